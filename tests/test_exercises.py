"""The exercise checker: the real ops pass, a fresh skeleton is "not implemented", and
each classic mistake -- a mutated reference written to a file -- fails with its hint."""
import subprocess
import sys
import textwrap

import pytest

from minicnn import exercises
from minicnn.exercises import checker, hints, templates

# A student file that delegates every exercise to minicnn's own ops: it must pass everything.
REFERENCE = '''
import numpy as np
import minicnn.functional as F


def linear_forward(x, w, b):
    return F.linear_forward(x, w, b)


def linear_backward(dout, cache):
    return F.linear_backward(dout, cache)


def relu_forward(x):
    return F.relu_forward(x)


def relu_backward(dout, cache):
    return F.relu_backward(dout, cache)


def conv_forward_naive(x, w, b, stride=1, pad=0):
    return F.conv2d_forward_naive(x, w, b, stride, pad)


def conv_backward_naive(dout, cache):
    return F.conv2d_backward_naive(dout, cache)


def im2col(x, kh, kw, stride, pad):
    cols = F.im2col(x, kh, kw, stride, pad)
    return cols.reshape(x.shape[0], -1, cols.shape[4] * cols.shape[5])


def col2im(cols, x_shape, kh, kw, stride, pad):
    n, c, h, w = x_shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    return F.col2im(cols.reshape(n, c, kh, kw, oh, ow), x_shape, stride, pad)


def conv_forward_im2col(x, w, b, stride=1, pad=0):
    return F.conv2d_forward(x, w, b, stride, pad)


def conv_backward_im2col(dout, cache):
    return F.conv2d_backward(dout, cache)


def max_pool_forward(x, size, stride):
    return F.max_pool2d_forward(x, size, stride)


def max_pool_backward(dout, cache):
    return F.max_pool2d_backward(dout, cache)


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    return F.batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)


def batchnorm_backward(dout, cache):
    return F.batchnorm_backward(dout, cache)


def dropout_forward(x, p, training, rng):
    return F.dropout_forward(x, p, training, rng)


def dropout_backward(dout, cache):
    return F.dropout_backward(dout, cache)


def lrn_forward(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    return F.lrn_forward(x, size, alpha, beta, k)


def lrn_backward(dout, cache):
    return F.lrn_backward(dout, cache)


def softmax_cross_entropy(scores, y):
    return F.softmax_cross_entropy(scores, y)


def residual_block_forward(x, w1, b1, w2, b2):
    a1, c1 = F.conv2d_forward(x, w1, b1, 1, 1)
    h, r1 = F.relu_forward(a1)
    a2, c2 = F.conv2d_forward(h, w2, b2, 1, 1)
    out, r2 = F.relu_forward(a2 + x)
    return out, (c1, r1, c2, r2)


def residual_block_backward(dout, cache):
    c1, r1, c2, r2 = cache
    ds = F.relu_backward(dout, r2)
    dh, dw2, db2 = F.conv2d_backward(ds, c2)
    dxb, dw1, db1 = F.conv2d_backward(F.relu_backward(dh, r1), c1)
    return dxb + ds, dw1, db1, dw2, db2
'''

# A correct loop-level conv with the padding handled in the backward; the mutants below
# break it in one place each.
NAIVE_CONV = '''
import numpy as np


def conv_forward_naive(x, w, b, stride=1, pad=0):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.tensordot(win, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, stride, pad)


def conv_backward_naive(dout, cache):
    x, w, stride, pad = cache
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            hs, ws = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            dxp[:, :, hs, ws] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, hs, ws], axes=([0], [0]))
    dx = dxp[:, :, pad:pad + h, pad:pad + wd]
    return dx, dw, dout.sum(axis=(0, 2, 3))
'''

LOOP_POOL = '''
import numpy as np


def max_pool_forward(x, size, stride):
    n, c, h, w = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size].max(axis=(2, 3))
    return out, (x, size, stride)


def max_pool_backward(dout, cache):
    x, size, stride = cache
    dx = np.zeros_like(x)
    n, c = x.shape[:2]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * stride:i * stride + size, j * stride:j * stride + size].reshape(n, c, -1)
            first = win.argmax(axis=2)
            for a in range(n):
                for b in range(c):
                    p, q = divmod(first[a, b], size)
                    dx[a, b, i * stride + p, j * stride + q] += dout[a, b, i, j]
    return dx
'''

BATCHNORM = '''
import numpy as np


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    vs = (1, -1) if x.ndim == 2 else (1, -1, 1, 1)
    if training:
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        m = x.size // x.shape[1]
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * m / (m - 1)
    else:
        mu, var = running_mean, running_var
    inv_std = 1 / np.sqrt(var + eps)
    xhat = (x - mu.reshape(vs)) * inv_std.reshape(vs)
    return gamma.reshape(vs) * xhat + beta.reshape(vs), (xhat, gamma, inv_std, axes, vs, training)


def batchnorm_backward(dout, cache):
    xhat, gamma, inv_std, axes, vs, training = cache
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    g = (gamma * inv_std).reshape(vs)
    if not training:
        return dout * g, dgamma, dbeta
    mean = lambda v: v.mean(axis=axes).reshape(vs)
    return g * (dout - mean(dout) - xhat * mean(dout * xhat)), dgamma, dbeta
'''

DROPOUT = '''
import numpy as np


def dropout_forward(x, p, training, rng):
    if not training:
        return x.copy(), None
    mask = (rng.random(x.shape) >= p) / (1 - p)
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout.copy() if cache is None else dout * cache
'''

SOFTMAX = '''
import numpy as np


def softmax_cross_entropy(scores, y):
    n = len(y)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    loss = -log_p[np.arange(n), y].mean()
    d = p.copy()
    d[np.arange(n), y] -= 1
    return loss, d / n
'''

LINEAR = '''
import numpy as np


def linear_forward(x, w, b):
    x2 = x.reshape(x.shape[0], -1)
    return x2 @ w.T + b, (x, x2, w)


def linear_backward(dout, cache):
    x, x2, w = cache
    dw = np.zeros_like(w)
    for n in range(len(x2)):
        dw += np.outer(dout[n], x2[n])
    return (dout @ w).reshape(x.shape), dw, dout.sum(axis=0)
'''

# Spatial batch norm through the (N, D) code, but with x.reshape(-1, C) straight from NCHW.
NO_TRANSPOSE = '''

_plain_forward = batchnorm_forward


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    out, cache = _plain_forward(x.reshape(-1, x.shape[1]), gamma, beta, running_mean, running_var, training,
                                momentum, eps)
    return out.reshape(x.shape), cache
'''


def mutate(source, old, new):
    assert old in source, old   # the mutation must apply, or the test proves nothing
    return source.replace(old, new)


# (name, source, function expected to fail, hint id it must give)
MUTANTS = [
    ("dw not summed over the batch", mutate(LINEAR, "dw += np.outer", "dw = np.outer"),
     "linear_backward", "batch_sum"),
    ("dw averaged over the batch", mutate(LINEAR, "return (dout @ w).reshape(x.shape), dw,",
                                          "return (dout @ w).reshape(x.shape), dw / len(x2),"),
     "linear_backward", "batch_mean"),
    ("conv dw not summed over the batch",
     mutate(NAIVE_CONV, "np.tensordot(dout[:, :, i, j], xp[:, :, hs, ws]", "np.tensordot(dout[-1:, :, i, j], xp[-1:, :, hs, ws]"),
     "conv_backward_naive", "batch_sum"),
    ("forgot padding in the conv backward (dw from the unpadded input)",
     mutate(NAIVE_CONV, "    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))\n    dxp",
            "    xp = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)))\n    dxp"),
     "conv_backward_naive", "conv_pad_backward"),
    ("padding not cropped from dx", mutate(NAIVE_CONV, "dx = dxp[:, :, pad:pad + h, pad:pad + wd]", "dx = dxp"),
     "conv_backward_naive", "pad_crop"),
    ("crop with pad:-pad", mutate(NAIVE_CONV, "dx = dxp[:, :, pad:pad + h, pad:pad + wd]",
                                  "dx = dxp[:, :, pad:-pad, pad:-pad]"),
     "conv_backward_naive", "pad_crop"),
    ("overlapping conv windows assigned, not added",
     mutate(NAIVE_CONV, "dxp[:, :, hs, ws] += ", "dxp[:, :, hs, ws] = "), "conv_backward_naive", "overlap_add"),
    ("padding ignored in the conv forward",
     mutate(NAIVE_CONV, "xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))\n    out",
            "xp = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)))\n    out"),
     "conv_forward_naive", "conv_pad_forward"),
    ("flipped kernel", mutate(NAIVE_CONV, "np.tensordot(win, w,", "np.tensordot(win, w[:, :, ::-1, ::-1],"),
     "conv_forward_naive", "conv_flip"),
    ("max pool gradient to every tied maximum",
     mutate(LOOP_POOL, "            first = win.argmax(axis=2)\n",
            "            first = win.argmax(axis=2)\n"
            "            ties = win == win.max(axis=2, keepdims=True)\n"
            "            dx[:, :, i * stride:i * stride + size, j * stride:j * stride + size] += "
            "(ties * dout[:, :, i, j][:, :, None]).reshape(n, c, size, size)\n            continue\n"),
     "max_pool_backward", "pool_ties_all"),
    ("overlapping pool windows assigned, not added",
     mutate(LOOP_POOL, "dx[a, b, i * stride + p, j * stride + q] += ", "dx[a, b, i * stride + p, j * stride + q] = "),
     "max_pool_backward", "overlap_add"),
    ("batch-norm dx with the statistics treated as constants",
     mutate(BATCHNORM, "g * (dout - mean(dout) - xhat * mean(dout * xhat))", "g * dout"),
     "batchnorm_backward", "bn_dx_constant_stats"),
    ("batch-norm dx without the variance term",
     mutate(BATCHNORM, "g * (dout - mean(dout) - xhat * mean(dout * xhat))", "g * (dout - mean(dout))"),
     "batchnorm_backward", "bn_dx_no_var_term"),
    ("batch-norm dx without the mean term",
     mutate(BATCHNORM, "g * (dout - mean(dout) - xhat * mean(dout * xhat))", "g * (dout - xhat * mean(dout * xhat))"),
     "batchnorm_backward", "bn_dx_no_mean_term"),
    ("spatial batch norm by reshaping NCHW to (-1, C)", BATCHNORM + NO_TRANSPOSE,
     "batchnorm_forward", "bn_per_channel"),
    ("running variance biased", mutate(BATCHNORM, "var * m / (m - 1)", "var"),
     "batchnorm_forward", "bn_running_unbiased"),
    ("CS231n momentum", mutate(mutate(BATCHNORM, "running_mean *= 1 - momentum", "running_mean *= momentum"),
                               "running_mean += momentum * mu", "running_mean += (1 - momentum) * mu"),
     "batchnorm_forward", "bn_momentum"),
    ("dropout not inverted", mutate(DROPOUT, "(rng.random(x.shape) >= p) / (1 - p)", "(rng.random(x.shape) >= p) * 1.0"),
     "dropout_forward", "dropout_not_inverted"),
    ("dropout p as the keep probability", mutate(DROPOUT, "(rng.random(x.shape) >= p) / (1 - p)",
                                                 "(rng.random(x.shape) < p) / (1 - p)"),
     "dropout_forward", "dropout_keep_prob"),
    ("dropout mask from global state", mutate(DROPOUT, "rng.random(x.shape)", "np.random.random(x.shape)"),
     "dropout_forward", "dropout_global_rng"),
    ("dropout backward without the scale", mutate(DROPOUT, "dout * cache", "dout * (cache != 0)"),
     "dropout_backward", "dropout_backward_mask"),
    ("softmax without the max subtraction", mutate(SOFTMAX, "shifted = scores - scores.max(axis=1, keepdims=True)",
                                                   "shifted = scores"),
     "softmax_cross_entropy", "softmax_overflow"),
    ("log of an underflowed probability", mutate(SOFTMAX, "loss = -log_p[np.arange(n), y].mean()",
                                                 "loss = -np.log(p[np.arange(n), y]).mean()"),
     "softmax_cross_entropy", "softmax_log_underflow"),
    ("summed loss", mutate(SOFTMAX, "loss = -log_p[np.arange(n), y].mean()", "loss = -log_p[np.arange(n), y].sum()"),
     "softmax_cross_entropy", "softmax_mean_loss"),
    ("dscores not divided by N", mutate(SOFTMAX, "return loss, d / n", "return loss, d"),
     "softmax_cross_entropy", "softmax_grad_n"),
    ("relu backward multiplies by x", REFERENCE.replace("return F.relu_backward(dout, cache)",
                                                        "return dout * np.maximum(cache[1], 0)").replace(
        "return F.relu_forward(x)", "return F.relu_forward(x)[0], (None, x)"),
     "relu_backward", "relu_local_grad"),
    ("LRN alpha not divided by size", REFERENCE.replace("return F.lrn_forward(x, size, alpha, beta, k)",
                                                        "return F.lrn_forward(x, size, alpha * size, beta, k)"),
     "lrn_forward", "lrn_alpha_size"),
    # The mutant keeps its own cache: minicnn's is opaque (its Cython path holds no scale).
    ("LRN backward without the neighbours' terms",
     REFERENCE.replace("return F.lrn_forward(x, size, alpha, beta, k)",
                       "return F.lrn_forward(x, size, alpha, beta, k)[0], (x, size, alpha, beta, k)").replace(
         "return F.lrn_backward(dout, cache)",
         "x, size, alpha, beta, k = cache\n"
         "    sq = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2), (0, 0), (0, 0)))\n"
         "    scale = k + alpha / size * sum(sq[:, d:d + x.shape[1]] for d in range(size))\n"
         "    return dout * scale ** -beta"),
     "lrn_backward", "lrn_cross_terms"),
    ("residual backward without the shortcut", REFERENCE.replace("return dxb + ds, dw1", "return dxb, dw1"),
     "residual_block_backward", "residual_shortcut"),
    ("residual backward skips the final relu", REFERENCE.replace("ds = F.relu_backward(dout, r2)", "ds = dout"),
     "residual_block_backward", "residual_final_relu"),
]


def write(tmp_path, source, name="student.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def by_name(results):
    return {r.name: r for r in results}


def test_reference_passes_everything(tmp_path):
    results = exercises.check_file(write(tmp_path, REFERENCE))
    expected = [f for n in templates.NAMES for f in templates.load(n).FUNCTIONS]
    assert [r.name for r in results] == expected
    bad = [(r.name, r.status, r.message) for r in results if r.status != checker.PASSED]
    assert not bad
    assert all(r.error is not None and r.error < checker.TOL for r in results)
    assert checker.exit_code(results) == 0


@pytest.mark.parametrize("source", [NAIVE_CONV, LOOP_POOL, BATCHNORM, DROPOUT, SOFTMAX, LINEAR],
                         ids=["conv", "pool", "batchnorm", "dropout", "softmax", "linear"])
def test_unmutated_loop_versions_pass(tmp_path, source):
    # The mutants' base versions are correct: a mutant's failure is the mutation's doing.
    results = exercises.check_file(write(tmp_path, source))
    assert results and all(r.status == checker.PASSED for r in results), [(r.name, r.message) for r in results]


@pytest.mark.parametrize("label, source, fn, hint", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_classic_mistake_fails_with_its_hint(tmp_path, label, source, fn, hint):
    results = by_name(exercises.check_file(write(tmp_path, source)))
    r = results[fn]
    assert r.status in (checker.FAILED, checker.ERROR), (label, r)
    assert hint in r.hints, (label, r.hints, r.message)
    assert r.message   # says what differs, and where
    assert checker.exit_code(list(results.values())) == 1


def test_failure_reports_the_worst_error_and_where(tmp_path):
    results = by_name(exercises.check_file(write(tmp_path, MUTANTS[0][1])))
    r = results["linear_backward"]
    assert r.error > 1e-3
    assert "dw[" in r.message and "expected" in r.message


def test_fresh_skeleton_is_all_not_implemented(tmp_path):
    out = tmp_path / "my_layers.py"
    assert exercises.main_new("all", str(out)) == 0
    results = exercises.check_file(out)
    assert len(results) == sum(len(templates.load(n).FUNCTIONS) for n in templates.NAMES)
    assert {r.status for r in results} == {checker.NOT_IMPLEMENTED}
    assert checker.exit_code(results) == 0


def test_skeleton_keeps_the_real_docstrings(tmp_path):
    text = exercises.skeleton("conv")
    assert "(N, F, OH, OW), OH = (H + 2*pad - KH) // stride + 1" in text
    assert "def conv_backward_im2col(dout, cache):" in text and "def linear_forward" not in text
    compile(text, "skeleton", "exec")


def test_new_refuses_to_overwrite_and_rejects_unknown_names(tmp_path, capsys):
    out = tmp_path / "mine.py"
    out.write_text("my work")
    assert exercises.main_new("linear", str(out)) == 1
    assert out.read_text() == "my work"
    assert exercises.main_new("linear", str(out), force=True) == 0
    assert "def linear_backward" in out.read_text()
    assert exercises.main_new("softmaxx", str(tmp_path / "x.py")) == 2
    assert "expected one of" in capsys.readouterr().err


def test_other_exceptions_are_reported_with_the_exception(tmp_path):
    src = REFERENCE.replace("return F.relu_forward(x)", "raise KeyError('oops')")
    results = by_name(exercises.check_file(write(tmp_path, src)))
    assert results["relu_forward"].status == checker.ERROR
    assert "KeyError" in results["relu_forward"].message and "oops" in results["relu_forward"].message
    # Its backward cannot run without it: skipped, not blamed.
    assert results["relu_backward"].status == checker.SKIPPED


def test_partly_written_file(tmp_path):
    # Forward written, backward still the blank: the backward is "not implemented".
    src = exercises.skeleton("relu").replace(
        'raise NotImplementedError("relu_forward: write me")', "return np.maximum(x, 0), x")
    results = by_name(exercises.check_file(write(tmp_path, src)))
    assert results["relu_forward"].status == checker.PASSED
    assert results["relu_backward"].status == checker.NOT_IMPLEMENTED


def test_relu_kink_choice_is_fine_and_noted(tmp_path):
    src = REFERENCE.replace("return F.relu_backward(dout, cache)", "return dout * (cache[1] >= 0)").replace(
        "return F.relu_forward(x)", "return np.maximum(x, 0), (None, x)")
    r = by_name(exercises.check_file(write(tmp_path, src)))["relu_backward"]
    assert r.status == checker.PASSED and "relu_kink" in r.notes


def test_every_hint_id_has_text():
    for name, body in hints.HINTS.items():
        assert len(body) > 40, name


def test_command_line_exit_codes_and_report(tmp_path):
    good, bad = write(tmp_path, REFERENCE, "good.py"), write(tmp_path, MUTANTS[-3][1], "bad.py")
    run = lambda *a: subprocess.run([sys.executable, "-m", "minicnn.exercises", *a],  # noqa: E731
                                    capture_output=True, text=True, cwd=tmp_path)
    ok = run("check", str(good))
    assert ok.returncode == 0 and "21 passed" in ok.stdout
    fail = run("check", str(bad))
    assert fail.returncode == 1
    assert "FAILED" in fail.stdout and "hint:" in fail.stdout
    assert run("check", str(tmp_path / "missing.py")).returncode == 2
    assert not (tmp_path / ".hypothesis").exists()   # the checker keeps no example database
