# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Spatial batch normalisation written out in C, the CPU kernels behind
``minicnn.functional.batchnorm`` for x of shape (N, C, H, W).

Shapes (all C-contiguous, float32 or float64; the (N, C, H, W) arrays are passed viewed as
(N, C, H*W), which is free for a contiguous array)::

    x, out, dout, dx     (N, C, L)     L = H * W;  m = N * L values per channel
    gamma, beta          (C,)          x's dtype
    mean, inv_std        (C,)          float64, written by the training forward, read after

Why a kernel: the NumPy path makes five full passes over x in the forward and three in
the backward, each into a fresh temporary (x - mean, its square, xhat, out; dout * xhat,
dx's pieces).  Here every channel is handled start to finish by one thread: its m values
(512 KB for N128 32x32 float32) are read from memory once and then re-read from that
core's L2 cache, and nothing is allocated but the output.

Accuracy: every per-channel sum is accumulated in double, in 8 interleaved partial sums
(the loop the compiler can vectorise without reordering a floating-point sum; one long
chain would also be 4x slower).  The variance is two-pass -- the mean first, then the sum
of (x - mean)^2 -- so a channel whose mean is large next to its spread keeps its variance
(sum(x^2) - m*mean^2 would cancel).  The per-element work is done in x's dtype with
x - mean taken first (not x * scale + shift, which cancels the same way).

The backward pass needs xhat = (x - mean) * inv_std; it is recomputed from x and the two
per-channel scalars instead of being stored (one 33 MB array less to write and keep).
So x must not change between the forward and the backward pass (as for conv2d).

Channels are independent, so they are shared out over OpenMP threads with ``prange``
(dynamic schedule: a core busy with another process does not hold up the layer); each
thread is the only writer of its channels.
"""
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

ctypedef fused floating:
    float
    double

# Below this many elements a call runs on the calling thread alone: waking and joining the
# OpenMP team costs tens of microseconds (far more on a busy machine) and would eat the gain.
cdef Py_ssize_t PARALLEL_MIN = 1 << 16
PARALLEL_THRESHOLD = PARALLEL_MIN   # visible from Python, for the tests


cdef inline double _sum(const floating* p, Py_ssize_t len) noexcept nogil:
    """sum(p[0:len]) in double, 8 partial sums."""
    cdef double a[8]
    cdef Py_ssize_t i, j, end = len - len % 8
    for j in range(8):
        a[j] = 0
    for i in range(0, end, 8):
        for j in range(8):
            a[j] += p[i + j]
    for i in range(end, len):
        a[0] += p[i]
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


cdef inline double _sum_sq_dev(const floating* p, Py_ssize_t len, double mean) noexcept nogil:
    """sum((p - mean)^2) in double, 8 partial sums."""
    cdef double a[8]
    cdef double d
    cdef Py_ssize_t i, j, end = len - len % 8
    for j in range(8):
        a[j] = 0
    for i in range(0, end, 8):
        for j in range(8):
            d = p[i + j] - mean
            a[j] += d * d
    for i in range(end, len):
        d = p[i] - mean
        a[0] += d * d
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


cdef inline void _sum_dy_dyxc(const floating* dy, const floating* x, Py_ssize_t len, double mean,
                              double* s_dy, double* s_dyxc) noexcept nogil:
    """s_dy += sum(dy), s_dyxc += sum(dy * (x - mean)), in double, 8 partial sums each."""
    cdef double a[8]
    cdef double b[8]
    cdef double g
    cdef Py_ssize_t i, j, end = len - len % 8
    for j in range(8):
        a[j] = 0
        b[j] = 0
    for i in range(0, end, 8):
        for j in range(8):
            g = dy[i + j]
            a[j] += g
            b[j] += g * (x[i + j] - mean)
    for i in range(end, len):
        g = dy[i]
        a[0] += g
        b[0] += g * (x[i] - mean)
    s_dy[0] += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    s_dyxc[0] += ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]))


cdef inline floating _keep(floating v, unsigned char m) noexcept nogil:
    """v if m else +0.0, as relu_backward gives it (an inf or NaN v under m = 0 included):
    the AND of v's bits with all ones or all zeros, so there is no branch to mispredict."""
    cdef uint32_t b32
    cdef uint64_t b64
    if floating is float:
        memcpy(&b32, &v, 4)
        b32 &= <uint32_t>0 - <uint32_t>(m != 0)
        memcpy(&v, &b32, 4)
    else:
        memcpy(&b64, &v, 8)
        b64 &= <uint64_t>0 - <uint64_t>(m != 0)
        memcpy(&v, &b64, 8)
    return v


cdef inline void _sum_dy_dyxc_masked(const floating* dy, const unsigned char* mask, const floating* x,
                                     Py_ssize_t len, double mean, double* s_dy,
                                     double* s_dyxc) noexcept nogil:
    """_sum_dy_dyxc of dy masked by a ReLU's mask (dy where mask, else 0)."""
    cdef double a[8]
    cdef double b[8]
    cdef double g
    cdef Py_ssize_t i, j, end = len - len % 8
    for j in range(8):
        a[j] = 0
        b[j] = 0
    for i in range(0, end, 8):
        for j in range(8):
            g = _keep(dy[i + j], mask[i + j])
            a[j] += g
            b[j] += g * (x[i + j] - mean)
    for i in range(end, len):
        g = _keep(dy[i], mask[i])
        a[0] += g
        b[0] += g * (x[i] - mean)
    s_dy[0] += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
    s_dyxc[0] += ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]))


cdef void _normalise_channel(const floating* x, floating* out, unsigned char* mask, Py_ssize_t n,
                             Py_ssize_t stride, Py_ssize_t L, floating mu, floating scale,
                             floating shift) noexcept nogil:
    """out = (x - mu) * scale + shift over the channel's n rows of L values; with a mask
    (not NULL) out = relu of that and mask = (that > 0)."""
    cdef Py_ssize_t i, k
    cdef const floating* xs
    cdef floating* os
    cdef floating v
    cdef unsigned char* ms
    for i in range(n):
        xs = x + i * stride
        os = out + i * stride
        if mask == NULL:
            for k in range(L):
                os[k] = (xs[k] - mu) * scale + shift
        else:
            # Fused ReLU: what relu_forward would make of this output (a NaN passes through).
            ms = mask + i * stride
            for k in range(L):
                v = (xs[k] - mu) * scale + shift
                os[k] = 0 if v <= 0 else v
                ms[k] = v > 0


cdef void _forward_train_channel(const floating* x, const floating* gamma, const floating* beta,
                                 floating* out, unsigned char* mask, double* mean, double* var, double* inv_std,
                                 Py_ssize_t n, Py_ssize_t C, Py_ssize_t L, Py_ssize_t c,
                                 double eps) noexcept nogil:
    cdef Py_ssize_t i, stride = C * L
    cdef double s = 0, mu, v, istd
    cdef const floating* xc = x + c * L
    for i in range(n):
        s += _sum(xc + i * stride, L)
    mu = s / (n * L)
    s = 0
    for i in range(n):
        s += _sum_sq_dev(xc + i * stride, L, mu)
    v = s / (n * L)
    istd = 1.0 / sqrt(v + eps)
    mean[c] = mu
    var[c] = v
    inv_std[c] = istd
    _normalise_channel(xc, out + c * L, NULL if mask == NULL else mask + c * L, n, stride, L,
                       <floating>mu, <floating>(gamma[c] * istd), beta[c])


def forward_train(const floating[:, :, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                  double eps, floating[:, :, ::1] out, double[::1] mean, double[::1] var,
                  double[::1] inv_std, unsigned char[:, :, ::1] relu_mask=None):
    """Training forward: batch statistics per channel, then out = gamma * xhat + beta.

    Inputs:
    - x: (N, C, L) C-contiguous float32 or float64 (an (N, C, H, W) array reshaped)
    - gamma, beta: (C,) x's dtype
    - eps: added to the variance
    - out: (N, C, L) x's dtype, overwritten with the normalised x
    - mean, var, inv_std: (C,) float64, overwritten with the batch mean, the biased batch
      variance and 1 / sqrt(var + eps)
    - relu_mask: None, or (N, C, L) uint8 (a bool array's bytes): then a ReLU is fused in,
      out = maximum(gamma * xhat + beta, 0) and relu_mask = (gamma * xhat + beta > 0)
    Returns None.
    """
    cdef Py_ssize_t n = x.shape[0], C = x.shape[1], L = x.shape[2], c
    _check("forward_train", (n, C, L), (out.shape[0], out.shape[1], out.shape[2]),
           (gamma.shape[0], beta.shape[0], mean.shape[0], var.shape[0], inv_std.shape[0]))
    cdef unsigned char* pk = _mask_ptr("forward_train", relu_mask, n, C, L)
    if n * L == 0:
        raise ValueError("forward_train: expected at least one value per channel")
    if C == 0:
        return
    cdef const floating* px = &x[0, 0, 0]
    cdef floating* po = &out[0, 0, 0]
    cdef double* pm = &mean[0]
    cdef double* pv = &var[0]
    cdef double* pi = &inv_std[0]
    for c in prange(C, nogil=True, schedule="dynamic", use_threads_if=n * C * L >= PARALLEL_MIN):
        _forward_train_channel(px, &gamma[0], &beta[0], po, pk, pm, pv, pi, n, C, L, c, eps)


def forward_eval(const floating[:, :, ::1] x, const floating[::1] gamma, const floating[::1] beta,
                 const double[::1] mean, const double[::1] inv_std, floating[:, :, ::1] out,
                 unsigned char[:, :, ::1] relu_mask=None):
    """Evaluation forward with given statistics: out = gamma * (x - mean) * inv_std + beta.

    Inputs: x (N, C, L); gamma, beta (C,) x's dtype; mean, inv_std (C,) float64;
    out (N, C, L) x's dtype, overwritten; relu_mask as in forward_train.  Returns None.
    """
    cdef Py_ssize_t n = x.shape[0], C = x.shape[1], L = x.shape[2], c
    _check("forward_eval", (n, C, L), (out.shape[0], out.shape[1], out.shape[2]),
           (gamma.shape[0], beta.shape[0], mean.shape[0], inv_std.shape[0]))
    cdef unsigned char* pk = _mask_ptr("forward_eval", relu_mask, n, C, L)
    if n * C * L == 0:
        return
    cdef const floating* px = &x[0, 0, 0]
    cdef floating* po = &out[0, 0, 0]
    for c in prange(C, nogil=True, schedule="dynamic", use_threads_if=n * C * L >= PARALLEL_MIN):
        _normalise_channel(px + c * L, po + c * L, NULL if pk == NULL else pk + c * L, n, C * L, L,
                           <floating>mean[c],
                           <floating>(gamma[c] * inv_std[c]), beta[c])


cdef void _backward_channel(const floating* dout, const unsigned char* mask, const floating* x,
                            const floating* gamma,
                            const double* mean, const double* inv_std, floating* dx,
                            floating* dgamma, floating* dbeta, Py_ssize_t n, Py_ssize_t C,
                            Py_ssize_t L, Py_ssize_t c, bint training) noexcept nogil:
    cdef Py_ssize_t i, k, stride = C * L, off
    cdef double s_dy = 0, s_dyxc = 0, m = n * L, istd = inv_std[c], g = gamma[c] * istd
    cdef double db, dg
    cdef floating mu = <floating>mean[c], k_dy, k_xc, k_0
    cdef const floating* ds
    cdef const floating* xs
    cdef floating* out
    for i in range(n):
        off = c * L + i * stride
        if mask == NULL:
            _sum_dy_dyxc(dout + off, x + off, L, mean[c], &s_dy, &s_dyxc)
        else:
            _sum_dy_dyxc_masked(dout + off, mask + off, x + off, L, mean[c], &s_dy, &s_dyxc)
    db = s_dy
    dg = s_dyxc * istd               # sum(dout * xhat)
    dbeta[c] = <floating>db
    dgamma[c] = <floating>dg
    # training: dx = g * (dout - (dbeta + xhat * dgamma) / m), xhat = (x - mean) * inv_std
    # eval:     dx = g * dout (the statistics are constants)
    k_dy = <floating>g
    if training:
        k_xc = <floating>(g * istd * dg / m)
        k_0 = <floating>(g * db / m)
    else:
        k_xc = 0
        k_0 = 0
    for i in range(n):
        off = c * L + i * stride
        ds = dout + off
        xs = x + off
        out = dx + off
        if mask == NULL:
            for k in range(L):
                out[k] = k_dy * ds[k] - k_xc * (xs[k] - mu) - k_0
        else:
            for k in range(L):
                out[k] = k_dy * _keep(ds[k], mask[off + k]) - k_xc * (xs[k] - mu) - k_0


def backward(const floating[:, :, ::1] dout, const floating[:, :, ::1] x, const floating[::1] gamma,
             const double[::1] mean, const double[::1] inv_std, bint training,
             floating[:, :, ::1] dx, floating[::1] dgamma, floating[::1] dbeta,
             const unsigned char[:, :, ::1] relu_mask=None):
    """Backward of forward_train (``training``) or forward_eval.

    Inputs:
    - dout, x: (N, C, L) C-contiguous, the upstream gradient and the forward input (not modified)
    - gamma: (C,); mean, inv_std: (C,) float64, the statistics the forward pass used
    - training: True if the statistics were the batch's (they then depend on x)
    - dx: (N, C, L) overwritten with the input gradient; dgamma, dbeta: (C,) overwritten
    - relu_mask: None, or the mask of a ReLU fused in by the forward pass (N, C, L) uint8:
      dout is then the gradient of the ReLU's output and only reaches x where the mask is set
    Returns None.
    """
    cdef Py_ssize_t n = x.shape[0], C = x.shape[1], L = x.shape[2], c
    _check("backward", (n, C, L), (dx.shape[0], dx.shape[1], dx.shape[2]),
           (gamma.shape[0], mean.shape[0], inv_std.shape[0], dgamma.shape[0], dbeta.shape[0]))
    if (dout.shape[0], dout.shape[1], dout.shape[2]) != (n, C, L):
        raise ValueError(f"backward: expected dout of shape {(n, C, L)}, received "
                         f"{(dout.shape[0], dout.shape[1], dout.shape[2])}")
    if C == 0:
        return
    if n * L == 0:
        for c in range(C):
            dgamma[c] = 0
            dbeta[c] = 0
        return
    cdef const unsigned char* pk = _mask_ptr("backward", relu_mask, n, C, L)
    cdef const floating* pd = &dout[0, 0, 0]
    cdef const floating* px = &x[0, 0, 0]
    cdef floating* pdx = &dx[0, 0, 0]
    for c in prange(C, nogil=True, schedule="dynamic", use_threads_if=n * C * L >= PARALLEL_MIN):
        _backward_channel(pd, pk, px, &gamma[0], &mean[0], &inv_std[0], pdx, &dgamma[0], &dbeta[0],
                          n, C, L, c, training)


def _check(name, expected, got, lengths):
    """The big output has the input's (N, C, L) shape and every per-channel vector C entries."""
    if tuple(got) != tuple(expected) or any(v != expected[1] for v in lengths):
        raise ValueError(f"{name}: expected an output of shape {tuple(expected)} and per-channel "
                         f"vectors of length {expected[1]}, received {tuple(got)} and lengths {list(lengths)}")


cdef unsigned char* _mask_ptr(name, const unsigned char[:, :, ::1] mask, Py_ssize_t n, Py_ssize_t C,
                              Py_ssize_t L) except? NULL:
    """The data pointer of an optional (n, C, L) mask; NULL for None."""
    if mask is None:
        return NULL
    if (mask.shape[0], mask.shape[1], mask.shape[2]) != (n, C, L):
        raise ValueError(f"{name}: expected relu_mask of shape {(n, C, L)}, received "
                         f"{(mask.shape[0], mask.shape[1], mask.shape[2])}")
    if n * C * L == 0:
        return NULL
    return <unsigned char*>&mask[0, 0, 0]
