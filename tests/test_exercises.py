"""The exercise checker grades: a correct submission passes (exit 0); a fresh skeleton, a
wrong one and one that hands in minicnn's own ops do not (exit 1); each classic mistake
-- a correct solution broken in one place, a "mutant" -- fails with its hint."""
import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from minicnn import exercises
from minicnn.exercises import checker, hints, report

# A correct submission of all 23 functions, NumPy only (the residual block uses minicnn's
# conv and relu ops, as its skeleton allows).
SOLUTION = (pathlib.Path(__file__).parent / "fixtures" / "exercise_solution.py").read_text()

# Spatial batch norm through the (N, D) code, but with x.reshape(-1, C) straight from NCHW.
NO_TRANSPOSE = '''

_plain_forward = batchnorm_forward


def batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    out, cache = _plain_forward(x.reshape(-1, x.shape[1]), gamma, beta, running_mean, running_var, training,
                                momentum, eps)
    return out.reshape(x.shape), cache
'''

CONV_OUT = "oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1\n    xp"
IM2COL_OUT = "oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1\n    xp"
POOL_OUT = "oh, ow = (h - size) // stride + 1, (w - size) // stride + 1"
FORWARD_PAD = "xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))\n    out"
BN_DX = "g * (dout - mean(dout) - xhat * mean(dout * xhat))"
POOL_ROUTE = "            first = win.argmax(axis=2)\n"
POOL_WINDOW = "dx[:, :, i * stride:i * stride + size, j * stride:j * stride + size] += "


def mutate(*changes, source=SOLUTION):
    """SOLUTION with each (old, new) replaced; every old must occur exactly once."""
    for old, new in changes:
        assert source.count(old) == 1, old   # the mutation must apply, or the test proves nothing
        source = source.replace(old, new)
    return source


# (name, source, function expected to fail, hint id it must give)
MUTANTS = [
    ("dw not summed over the batch", mutate(("dw += np.outer", "dw = np.outer")),
     "linear_backward", "batch_sum"),
    ("dw averaged over the batch", mutate(("return (dout @ w).reshape(x.shape), dw,",
                                           "return (dout @ w).reshape(x.shape), dw / len(x2),")),
     "linear_backward", "batch_mean"),
    ("linear forward does not flatten x", mutate(("x2 = x.reshape(x.shape[0], -1)\n    return", "x2 = x\n    return")),
     "linear_forward", "linear_flatten"),
    ("linear forward with w as (in, out)", mutate(("return x2 @ w.T + b", "return x2 @ w + b")),
     "linear_forward", "linear_weight_layout"),
    ("linear dw as (in, out)", mutate(("dw = np.zeros_like(w)\n    for n", "dw = np.zeros(w.T.shape)\n    for n"),
                                      ("dw += np.outer(dout[n], x2[n])", "dw += np.outer(x2[n], dout[n])")),
     "linear_backward", "linear_weight_layout"),
    ("relu with np.max", mutate(("return np.maximum(x, 0), x", "return np.max(x, 0), x")),
     "relu_forward", "relu_max_vs_maximum"),
    ("relu backward multiplies by x", mutate(("return dout * (cache > 0)", "return dout * np.maximum(cache, 0)")),
     "relu_backward", "relu_local_grad"),
    ("conv dw not summed over the batch",
     mutate(("np.tensordot(dout[:, :, i, j], xp[:, :, hs, ws]", "np.tensordot(dout[-1:, :, i, j], xp[-1:, :, hs, ws]")),
     "conv_backward_naive", "batch_sum"),
    ("conv db kept per position", mutate(("return dx, dw, dout.sum(axis=(0, 2, 3))", "return dx, dw, dout.sum(axis=0)")),
     "conv_backward_naive", "bias_grad_positions"),
    ("forgot padding in the conv backward (dw from the unpadded input)",
     mutate(("    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))\n    dxp",
             "    xp = np.pad(x, ((0, 0), (0, 0), (0, 2 * pad), (0, 2 * pad)))\n    dxp")),
     "conv_backward_naive", "conv_pad_backward"),
    ("padding not cropped from dx", mutate(("dx = dxp[:, :, pad:pad + h, pad:pad + wd]", "dx = dxp")),
     "conv_backward_naive", "pad_crop"),
    ("crop with pad:-pad", mutate(("dx = dxp[:, :, pad:pad + h, pad:pad + wd]", "dx = dxp[:, :, pad:-pad, pad:-pad]")),
     "conv_backward_naive", "pad_crop"),
    ("overlapping conv windows assigned, not added",
     mutate(("dxp[:, :, hs, ws] += ", "dxp[:, :, hs, ws] = ")), "conv_backward_naive", "overlap_add"),
    ("padding ignored in the conv forward",
     mutate((FORWARD_PAD, FORWARD_PAD.replace("(pad, pad), (pad, pad)", "(0, 2 * pad), (0, 2 * pad)"))),
     "conv_forward_naive", "conv_pad_forward"),
    ("conv output size counts the padding once (x padded right)",
     mutate((CONV_OUT, CONV_OUT.replace("2 * pad", "pad"))), "conv_forward_naive", "conv_out_size_pad"),
    ("conv padded on one side only",
     mutate((FORWARD_PAD, FORWARD_PAD.replace("(pad, pad), (pad, pad)", "(2 * pad, 0), (2 * pad, 0)"))),
     "conv_forward_naive", "conv_pad_other"),
    ("conv output size rounded up",
     mutate((CONV_OUT, CONV_OUT.replace("(h + 2 * pad - kh) // stride", "-(-(h + 2 * pad - kh) // stride)")
             .replace("(wd + 2 * pad - kw) // stride", "-(-(wd + 2 * pad - kw) // stride)"))),
     "conv_forward_naive", "out_size_floor"),
    ("flipped kernel", mutate(("np.tensordot(win, w,", "np.tensordot(win, w[:, :, ::-1, ::-1],")),
     "conv_forward_naive", "conv_flip"),
    ("im2col output size counts the padding once",
     mutate((IM2COL_OUT, IM2COL_OUT.replace("2 * pad", "pad"))), "im2col", "conv_out_size_pad"),
    ("im2col rows ordered (tap, channel)",
     mutate(("return cols.reshape(n, c * kh * kw, oh * ow)",
             "return cols.transpose(0, 2, 3, 1, 4, 5).reshape(n, c * kh * kw, oh * ow)")),
     "im2col", "im2col_row_order"),
    ("max pool output size rounded up",
     mutate((POOL_OUT, "oh, ow = -(-(h - size) // stride) + 1, -(-(w - size) // stride) + 1")),
     "max_pool_forward", "out_size_floor"),
    ("max pool gradient to every tied maximum",
     mutate((POOL_ROUTE, POOL_ROUTE + "            ties = win == win.max(axis=2, keepdims=True)\n"
             "            " + POOL_WINDOW + "(ties * dout[:, :, i, j][:, :, None]).reshape(n, c, size, size)\n"
             "            continue\n")),
     "max_pool_backward", "pool_ties_all"),
    ("max pool gradient spread over the window",
     mutate((POOL_ROUTE, POOL_ROUTE + "            " + POOL_WINDOW + "dout[:, :, i, j][:, :, None, None]\n"
             "            continue\n")),
     "max_pool_backward", "pool_grad_window"),
    ("overlapping pool windows assigned, not added",
     mutate(("dx[a, b, i * stride + p, j * stride + q] += ", "dx[a, b, i * stride + p, j * stride + q] = ")),
     "max_pool_backward", "overlap_add"),
    ("batch-norm dx with the statistics treated as constants", mutate((BN_DX, "g * dout")),
     "batchnorm_backward", "bn_dx_constant_stats"),
    ("batch-norm dx without the variance term", mutate((BN_DX, "g * (dout - mean(dout))")),
     "batchnorm_backward", "bn_dx_no_var_term"),
    ("batch-norm dx without the mean term", mutate((BN_DX, "g * (dout - xhat * mean(dout * xhat))")),
     "batchnorm_backward", "bn_dx_no_mean_term"),
    ("spatial batch norm by reshaping NCHW to (-1, C)", SOLUTION + NO_TRANSPOSE,
     "batchnorm_forward", "bn_per_channel"),
    ("batch normalised with the unbiased variance",
     mutate(("mu, var = x.mean(axis=axes), x.var(axis=axes)", "mu, var = x.mean(axis=axes), x.var(axis=axes, ddof=1)")),
     "batchnorm_forward", "bn_biased_normalise"),
    ("running variance biased", mutate(("var * m / (m - 1)", "var")),
     "batchnorm_forward", "bn_running_unbiased"),
    ("CS231n momentum", mutate(("running_mean *= 1 - momentum", "running_mean *= momentum"),
                               ("running_mean += momentum * mu", "running_mean += (1 - momentum) * mu")),
     "batchnorm_forward", "bn_momentum"),
    ("dropout not inverted", mutate(("(rng.random(x.shape) >= p) / (1 - p)", "(rng.random(x.shape) >= p) * 1.0")),
     "dropout_forward", "dropout_not_inverted"),
    ("dropout p as the keep probability", mutate(("(rng.random(x.shape) >= p) / (1 - p)",
                                                  "(rng.random(x.shape) < p) / (1 - p)")),
     "dropout_forward", "dropout_keep_prob"),
    ("dropout mask from global state", mutate(("rng.random(x.shape)", "np.random.random(x.shape)")),
     "dropout_forward", "dropout_global_rng"),
    ("dropout backward without the scale", mutate(("dout * cache", "dout * (cache != 0)")),
     "dropout_backward", "dropout_backward_mask"),
    ("LRN alpha not divided by size", mutate(("scale = k + alpha / size * sum(", "scale = k + alpha * sum(")),
     "lrn_forward", "lrn_alpha_size"),
    ("LRN backward without the neighbours' terms",
     mutate(("return dout * scale ** -beta - 2 * alpha * beta / size * x * cross", "return dout * scale ** -beta")),
     "lrn_backward", "lrn_cross_terms"),
    ("softmax without the max subtraction", mutate(("shifted = scores - scores.max(axis=1, keepdims=True)",
                                                    "shifted = scores")),
     "softmax_cross_entropy", "softmax_overflow"),
    ("log of an underflowed probability", mutate(("loss = -log_p[np.arange(n), y].mean()",
                                                  "loss = -np.log(p[np.arange(n), y]).mean()")),
     "softmax_cross_entropy", "softmax_log_underflow"),
    ("summed loss", mutate(("loss = -log_p[np.arange(n), y].mean()", "loss = -log_p[np.arange(n), y].sum()")),
     "softmax_cross_entropy", "softmax_mean_loss"),
    ("dscores not divided by N", mutate(("return loss, d / n", "return loss, d")),
     "softmax_cross_entropy", "softmax_grad_n"),
    ("residual backward without the shortcut", mutate(("return dxb + ds, dw1", "return dxb, dw1")),
     "residual_block_backward", "residual_shortcut"),
    ("residual backward skips the final relu", mutate(("ds = F.relu_backward(dout, r2)", "ds = dout")),
     "residual_block_backward", "residual_final_relu"),
    ("residual forward without the shortcut", mutate(("F.relu_forward(a2 + x)", "F.relu_forward(a2)")),
     "residual_block_forward", "residual_shortcut_forward"),
    ("relu backward returns the mask", mutate(("return dout * (cache > 0)", "return (cache > 0) * 1.0")),
     "relu_backward", "relu_dout"),
    ("conv windows ignore the stride",
     mutate(("win = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]",
             "win = xp[:, :, i:i + kh, j:j + kw]")),
     "conv_forward_naive", "stride"),
    ("conv without its bias", mutate(("axes=([1, 2, 3], [1, 2, 3])) + b", "axes=([1, 2, 3], [1, 2, 3]))")),
     "conv_forward_naive", "bias"),
    ("linear dx left flat", mutate(("return (dout @ w).reshape(x.shape), dw", "return dout @ w, dw")),
     "linear_backward", "reshape_dx"),
    ("batch norm evaluates with the batch's statistics",
     mutate(("    else:\n        mu, var = running_mean, running_var",
             "    else:\n        mu, var = x.mean(axis=axes), x.var(axis=axes)")),
     "batchnorm_forward", "bn_eval_batch_stats"),
    ("running statistics rebound, not updated in place",
     mutate(("running_mean *= 1 - momentum\n        running_mean += momentum * mu\n"
             "        running_var *= 1 - momentum\n        running_var += momentum * var * m / (m - 1)",
             "running_mean = (1 - momentum) * running_mean + momentum * mu\n"
             "        running_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)")),
     "batchnorm_forward", "bn_running_in_place"),
    ("batch-norm dx with a wrong variance term", mutate((BN_DX, "g * (dout - mean(dout) - xhat * mean(dout))")),
     "batchnorm_backward", "bn_dx_terms"),
    ("dropout also in evaluation", mutate(("if not training:\n        return x.copy(), None", "if False:\n        pass")),
     "dropout_forward", "dropout_eval"),
    ("LRN window the wrong way round",
     mutate(("sq = np.pad(x * x, ((0, 0), (size // 2, (size - 1) // 2)",
             "sq = np.pad(x * x, ((0, 0), ((size - 1) // 2, size // 2)")),
     "lrn_forward", "lrn_window"),
    ("softmax gradient without the one-hot", mutate(("    d[np.arange(n), y] -= 1\n", "")),
     "softmax_cross_entropy", "softmax_onehot"),
]

# Submissions that hand in minicnn's own code, each in another disguise.
CHEATS = [
    ("aliases", "from minicnn.functional import conv2d_forward as conv_forward_naive, "
                "conv2d_backward as conv_backward_naive\n"),
    ("thin wrapper", '''
import minicnn.functional as F


def conv_forward_naive(x, w, b, stride=1, pad=0):
    return F.conv2d_forward(x, w, b, stride, pad)
'''),
    ("through a helper of the file", '''
from minicnn.functional import conv2d_forward as _conv


def _helper(*args):
    return _conv(*args)


def conv_forward_naive(x, w, b, stride=1, pad=0):
    return _helper(x, w, b, stride, pad)
'''),
    ("import inside the function", '''
def conv_forward_naive(x, w, b, stride=1, pad=0):
    import minicnn
    return minicnn.functional.conv2d_forward(x, w, b, stride, pad)
'''),
    ("a default argument", '''
import functools
from minicnn import functional


def conv_forward_naive(x, w, b, stride=1, pad=0, _op=functools.partial(functional.conv2d_forward)):
    return _op(x, w, b, stride, pad)
'''),
    # Nothing in the code names it: only watching the calls finds it.
    ("a computed import", '''
import importlib


def conv_forward_naive(x, w, b, stride=1, pad=0):
    ops = importlib.import_module("".join(["mini", "cnn.functional"]))
    return getattr(ops, "conv2d_" + "forward")(x, w, b, stride, pad)
'''),
    ("minicnn's relu in the relu exercise", '''
import minicnn.functional as F


def relu_forward(x):
    return F.relu_forward(x)
'''),
]


def write(tmp_path, source, name="student.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def by_name(results):
    return {r.name: r for r in results}


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "minicnn.exercises", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


# ----------------------------------------------------------------------------- grading
def test_correct_solution_passes_everything(tmp_path):
    results = exercises.check_file(write(tmp_path, SOLUTION))
    assert [r.name for r in results] == list(exercises.ALL_FUNCTIONS)
    bad = [(r.name, r.status, r.message) for r in results if r.status != checker.PASSED]
    assert not bad
    # Every error is below its tolerance, which is far above what a correct solution gives.
    assert all(r.error is not None and r.error <= r.tolerance for r in results)
    assert all(r.typical * 100 <= r.tolerance for r in results)
    assert report.exit_code(results) == 0


def test_fresh_skeleton_is_not_implemented_and_does_not_pass(tmp_path):
    out = tmp_path / "my_layers.py"
    assert exercises.main_new("all", str(out)) == 0
    results = exercises.check_file(out)
    assert len(results) == len(exercises.ALL_FUNCTIONS)
    assert {r.status for r in results} == {checker.NOT_IMPLEMENTED}
    assert report.exit_code(results) == 1   # an autograder must not count a blank file as a pass


def test_skeleton_wrong_cheating_and_correct_submissions_exit_1_1_1_0(tmp_path):
    assert exercises.main_new("all", str(tmp_path / "skeleton.py")) == 0
    wrong = write(tmp_path, MUTANTS[0][1], "wrong.py")
    cheat = write(tmp_path, CHEATS[0][1], "cheat.py")
    good = write(tmp_path, SOLUTION, "good.py")
    codes = [cli("check", f, cwd=tmp_path) for f in ("skeleton.py", wrong, cheat, good)]
    assert [c.returncode for c in codes] == [1, 1, 1, 0], [c.stdout[-500:] for c in codes]
    assert "23 not implemented" in codes[0].stdout and "not passed" in codes[0].stdout
    assert "FAILED" in codes[1].stdout and "hint:" in codes[1].stdout
    assert "REFUSED" in codes[2].stdout and "minicnn's own code" in codes[2].stdout
    assert "23 passed" in codes[3].stdout and "every checked function passed" in codes[3].stdout
    # and through the `minicnn` command itself
    from minicnn import cli as main_cli
    assert main_cli.main(["exercise", "check", str(cheat)]) == 1
    assert not (tmp_path / ".hypothesis").exists()   # the checker keeps no example database
    assert cli("check", tmp_path / "missing.py", cwd=tmp_path).returncode == 2


def test_errors_are_printed_with_their_tolerance(tmp_path):
    ok = cli("check", write(tmp_path, SOLUTION), "relu", cwd=tmp_path)
    assert ok.returncode == 0
    line = next(s for s in ok.stdout.splitlines() if "relu_backward" in s)
    assert "relative error" in line and "(passes below 1e-5; a correct float64 solution gives about 1e-8)" in line
    r = by_name(exercises.check_file(write(tmp_path, MUTANTS[0][1]), ["linear_backward"]))["linear_backward"]
    assert r.error > 1e-3 and "dw[" in r.message and "expected" in r.message
    assert "passes below 1e-5" in report.error_text(r)


def test_a_subset_is_checked_step_by_step(tmp_path):
    skeleton = tmp_path / "mine.py"
    exercises.main_new("all", str(skeleton))
    text = skeleton.read_text().replace('raise NotImplementedError("relu_forward: write me")',
                                        "return np.maximum(x, 0), x")
    skeleton.write_text(text)
    assert cli("check", skeleton, "relu_forward", cwd=tmp_path).returncode == 0   # done so far
    r = cli("check", skeleton, "relu", cwd=tmp_path)                              # the exercise
    assert r.returncode == 1 and "1 passed, 1 not implemented" in r.stdout
    assert cli("check", skeleton, cwd=tmp_path).returncode == 1                   # the whole file
    r = cli("check", skeleton, "relu_fwd", cwd=tmp_path)
    assert r.returncode == 2 and "expected exercise names" in r.stderr
    # A requested function the file does not define is not implemented, not silently skipped.
    only_relu = write(tmp_path, exercises.skeleton("relu"), "relu_only.py")
    results = exercises.check_file(only_relu, ["relu_forward", "linear_forward"])
    assert [(r.name, r.status) for r in results] == [("linear_forward", checker.NOT_IMPLEMENTED),
                                                     ("relu_forward", checker.NOT_IMPLEMENTED)]


def test_json_report_for_autograders(tmp_path):
    src = mutate(("dw += np.outer", "dw = np.outer"))
    src = src.replace("def softmax_cross_entropy", "def _unused_softmax")
    src += "\nfrom minicnn.functional import softmax_cross_entropy\n"
    r = cli("check", write(tmp_path, src), "--json", cwd=tmp_path)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["passed"] is False and out["file"].endswith("student.py")
    fns = {f["name"]: f for f in out["functions"]}
    assert len(fns) == 23
    assert fns["relu_forward"]["status"] == "pass" and fns["relu_forward"]["tolerance"] == 1e-7
    bad = fns["linear_backward"]
    assert bad["status"] == "fail" and bad["detail"] == "wrong result" and bad["error"] > 1e-5
    assert bad["tolerance"] == 1e-5 and bad["typical_error"] == 1e-8 and "dw[" in bad["message"]
    assert [h["id"] for h in bad["hints"]] == ["batch_sum"] and "summed over the batch" in bad["hints"][0]["text"]
    assert fns["softmax_cross_entropy"]["status"] == "refused" and "rule" in out
    assert out["counts"] == {"pass": 21, "fail": 1, "not-implemented": 0, "refused": 1}
    blank = tmp_path / "blank.py"
    exercises.main_new("relu", str(blank))
    out = json.loads(cli("check", blank, "--json", cwd=tmp_path).stdout)
    assert out["passed"] is False and {f["status"] for f in out["functions"]} == {"not-implemented"}
    assert json.loads(cli("check", write(tmp_path, SOLUTION), "--json", cwd=tmp_path).stdout)["passed"] is True


# ------------------------------------------------------------------------------ refusal
@pytest.mark.parametrize("label, source", CHEATS, ids=[c[0] for c in CHEATS])
def test_minicnns_own_code_is_refused(tmp_path, label, source):
    results = exercises.check_file(write(tmp_path, source))
    assert results and all(r.status == checker.REFUSED for r in results), [(r.name, r.status) for r in results]
    assert all("minicnn" in r.message for r in results)
    if label == "a computed import":   # no name in the code: the call itself was seen
        assert "called minicnn.functional.conv.conv2d_forward" in results[0].message
    assert report.exit_code(results) == 1


def test_importing_minicnn_is_fine_when_the_checked_code_does_not_use_it(tmp_path):
    # SOLUTION imports minicnn.functional at the top for its residual block; its other
    # functions are its own, and the residual block may use the conv and relu ops.
    results = by_name(exercises.check_file(write(tmp_path, SOLUTION), ["relu", "residual"]))
    assert {r.status for r in results.values()} == {checker.PASSED}
    # ... but not other ops of minicnn.
    src = mutate(("dh, dw2, db2 = F.conv2d_backward(ds, c2)",
                  "dh, dw2, db2 = F.conv2d_backward(ds, c2)\n"
                  "    F.linear_forward(dh.reshape(len(dh), -1), dw2.reshape(len(dw2), -1)[:, :1], db2)"))
    r = by_name(exercises.check_file(write(tmp_path, src), ["residual_block_backward"]))["residual_block_backward"]
    assert r.status == checker.REFUSED and "linear_forward" in r.message


# --------------------------------------------------------------------- classic mistakes
@pytest.mark.parametrize("label, source, fn, hint", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_classic_mistake_fails_with_its_hint(tmp_path, label, source, fn, hint):
    r = by_name(exercises.check_file(write(tmp_path, source), [fn]))[fn]
    assert r.status in (checker.FAILED, checker.ERROR), (label, r)
    assert hint in r.hints, (label, r.hints, r.message)
    assert r.message   # says what differs, and where
    assert report.exit_code([r]) == 1


def test_every_hint_has_text_and_a_mutant():
    for name, body in hints.HINTS.items():
        assert len(body) > 40, name
    # Every mistake the checker names is proven by a mutant above or in
    # test_exercises_architecture.py; the notes on accepted choices (not mistakes) by the tests below.
    from test_exercises_architecture import MUTANTS as MORE
    assert set(hints.HINTS) - {m[3] for m in MUTANTS + MORE} == {"relu_kink", "pool_ties_other"}


def test_padding_counted_once_is_not_called_padding_ignored(tmp_path):
    """Issue 19: x padded right but OH = (H + pad - K) // S + 1 got "Padding is ignored"."""
    src = mutate((CONV_OUT, CONV_OUT.replace("2 * pad", "pad")))
    r = by_name(exercises.check_file(write(tmp_path, src), ["conv_forward_naive"]))["conv_forward_naive"]
    assert "conv_pad_forward" not in r.hints and r.hints[0] == "conv_out_size_pad"


# ------------------------------------------------------------------------------ details
def test_skeleton_keeps_the_real_docstrings(tmp_path):
    text = exercises.skeleton("conv")
    assert "(N, F, OH, OW), OH = (H + 2*pad - KH) // stride + 1" in text
    assert "def conv_backward_im2col(dout, cache):" in text and "def linear_forward" not in text
    assert "REFUSED" in text
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
    src = mutate(("return np.maximum(x, 0), x", "raise KeyError('oops')"))
    results = by_name(exercises.check_file(write(tmp_path, src), ["relu"]))
    assert results["relu_forward"].status == checker.ERROR
    assert "KeyError" in results["relu_forward"].message and "oops" in results["relu_forward"].message
    # Its backward cannot run without it: skipped, not blamed -- and not passed.
    assert results["relu_backward"].status == checker.SKIPPED
    assert report.to_json(list(results.values()), "f.py")["functions"][1]["status"] == "fail"


def test_partly_written_file(tmp_path):
    # Forward written, backward still the blank: the backward is "not implemented".
    src = exercises.skeleton("relu").replace(
        'raise NotImplementedError("relu_forward: write me")', "return np.maximum(x, 0), x")
    results = by_name(exercises.check_file(write(tmp_path, src)))
    assert results["relu_forward"].status == checker.PASSED
    assert results["relu_backward"].status == checker.NOT_IMPLEMENTED


def test_relu_kink_choice_is_fine_and_noted(tmp_path):
    src = mutate(("return dout * (cache > 0)", "return dout * (cache >= 0)"))
    r = by_name(exercises.check_file(write(tmp_path, src), ["relu_backward"]))["relu_backward"]
    assert r.status == checker.PASSED and "relu_kink" in r.notes


def test_pool_ties_to_another_maximum_is_fine_and_noted(tmp_path):
    src = mutate(("first = win.argmax(axis=2)", "first = win.shape[2] - 1 - win[:, :, ::-1].argmax(axis=2)"))
    r = by_name(exercises.check_file(write(tmp_path, src), ["max_pool_backward"]))["max_pool_backward"]
    assert r.status == checker.PASSED and "pool_ties_other" in r.notes


def test_the_student_prints_stay_out_of_the_json(tmp_path):
    src = mutate(("return np.maximum(x, 0), x", "print('debug', x.shape)\n    return np.maximum(x, 0), x"))
    r = cli("check", write(tmp_path, "print('at import')\n" + src), "relu", "--json", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["passed"] is True
    assert "debug" in r.stderr and "at import" in r.stderr
