# What the C chunk loops of winograd.pyx and im2col.pyx share: GEMM from C (the
# declarations of blas_gemm.h, the functions that give it NumPy's BLAS, _gemm for both float
# types) and the check of a bias argument.  Included (not cimported) so that each module has
# its own copy of the function pointers.

cdef extern from "blas_gemm.h" nogil:
    void mc_gemm_set(size_t sgemm, size_t dgemm, int ilp64)
    int mc_gemm_ready()
    void mc_gemm_f(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha,
                   const float* a, Py_ssize_t lda, const float* b, Py_ssize_t ldb, float beta,
                   float* c, Py_ssize_t ldc)
    void mc_gemm_d(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha,
                   const double* a, Py_ssize_t lda, const double* b, Py_ssize_t ldb, double beta,
                   double* c, Py_ssize_t ldc)
    Py_ssize_t mc_next_chunk(long long* next, Py_ssize_t step)


def gemm_use(size_t sgemm, size_t dgemm, bint ilp64):
    """Give the chunk loops the addresses of a CBLAS sgemm and dgemm (``ilp64``: 64-bit
    integer arguments).  minicnn.runtime.cblas_gemm() finds NumPy's."""
    if sgemm == 0 or dgemm == 0:
        raise ValueError("gemm_use: expected the addresses of cblas_sgemm and cblas_dgemm, received a null one")
    mc_gemm_set(sgemm, dgemm, ilp64)


def gemm_ready():
    """True once gemm_use() has been given a BLAS: the chunk loops can run."""
    return bool(mc_gemm_ready())


cdef inline void _gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                       const floating* a, Py_ssize_t lda, const floating* b, Py_ssize_t ldb,
                       floating beta, floating* c, Py_ssize_t ldc) noexcept nogil:
    """c (m x n, row-major) = op(a) @ op(b) + beta * c; op(a) is m x k (a^T if trans_a)."""
    if floating is float:
        mc_gemm_f(trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)
    else:
        mc_gemm_d(trans_a, trans_b, m, n, k, 1, a, lda, b, ldb, beta, c, ldc)


cdef const floating* _bias_pointer(name, object bias, Py_ssize_t f, const floating* like) except? NULL:
    """The data of ``bias`` -- None or an (f,) array of the kernel's dtype, checked -- or NULL
    for None (or f == 0).  The caller keeps ``bias`` alive while the pointer is used."""
    cdef const floating[::1] b
    if bias is None:
        return NULL
    b = bias
    if b.shape[0] != f:
        raise ValueError(f"{name}: expected bias of shape ({f},), received ({b.shape[0]},)")
    return &b[0] if f > 0 else NULL
