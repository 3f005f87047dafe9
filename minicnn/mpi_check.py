"""`minicnn mpi-check`: is the MPI setup sound, and how fast is an allreduce on it?

    mpiexec -n 2 minicnn mpi-check                         # this machine
    mpiexec -n 4 --hostfile hosts minicnn mpi-check        # the cluster, before a long run

Every rank reports its host and Python/NumPy/minicnn versions (they must agree across hosts);
then float32 buffers of a few sizes are summed with ``Allreduce`` (the gradient exchange of
data-parallel training) and rank 0 prints the time per call and the bandwidth a ring
allreduce would need for it (``minicnn.distributed.allreduce_timings``).  A sum that comes
back wrong is reported and the exit code is 1.
"""
import platform
import socket

import numpy as np

# Values per buffer: a BN layer's sums, a small conv, ResNet-20 (0.27 M), ResNet-50 (25.6 M).
DEFAULT_SIZES = (16, 1024, 65536, 269722, 1 << 21, 25557032)


def add_subparser(sub):
    """Register `minicnn mpi-check` on the CLI's subparsers."""
    p = sub.add_parser("mpi-check", help="under mpiexec: list the ranks and time an allreduce of "
                       "a few buffer sizes (the gradient exchange of data-parallel training)")
    p.add_argument("--sizes", type=int, nargs="+", metavar="N", default=list(DEFAULT_SIZES),
                   help="buffer sizes in float32 values")
    p.add_argument("--repeat", type=int, default=10, help="timed calls per size (the median is shown)")
    p.set_defaults(func=cmd_mpi_check)


def cmd_mpi_check(args):
    from minicnn import __version__, distributed
    if any(n < 1 for n in args.sizes) or args.repeat < 1:
        raise ValueError(f"mpi-check: expected --sizes and --repeat of at least 1, received "
                         f"{args.sizes} and {args.repeat}")
    try:
        MPI = distributed.mpi()
    except RuntimeError as e:   # no mpi4py: a message and exit code 2, like a bad option
        raise ValueError(f"mpi-check: {e}") from None
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    me = (socket.gethostname(), platform.python_version(), np.__version__, __version__)
    everyone = comm.gather(me, root=0)
    ok = _sum_is_right(comm, MPI)
    rows = distributed.allreduce_timings(comm, args.sizes, repeat=args.repeat)
    if rank != 0:
        return 0 if ok else 1
    library = MPI.Get_library_version().split(",")[0].strip()
    print(f"{size} rank(s); {library}; "
          f"mpi4py {__import__('mpi4py').__version__}")
    for r, (host, py, npv, mv) in enumerate(everyone):
        print(f"  rank {r}: {host}, Python {py}, NumPy {npv}, minicnn {mv}")
    if len({e[1:] for e in everyone}) > 1:
        print("warning: the ranks run different versions; make them identical on every host")
    if size == 1:
        print("one rank only: start it with `mpiexec -n N minicnn mpi-check` to measure an exchange")
    print(f"allreduce sum of float32 buffers: {'right' if ok else 'WRONG'}")
    print(f"{'values':>12} {'MB':>9} {'median ms':>10} {'best ms':>10} {'ring GB/s':>10}")
    for values, median, best in rows:
        bw = distributed.bus_bandwidth(values, median, size) / 1e9
        print(f"{values:>12,} {values * 4 / 1e6:>9.3f} {median * 1e3:>10.3f} {best * 1e3:>10.3f} "
              f"{bw:>10.2f}")
    return 0 if ok else 1


def _sum_is_right(comm, MPI):
    """Whether summing rank+1 over the ranks gives N(N+1)/2 on every rank."""
    buf = np.full(1000, comm.Get_rank() + 1, dtype=np.float32)
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    n = comm.Get_size()
    return comm.allreduce(bool(np.all(buf == n * (n + 1) / 2)), op=MPI.LAND)
