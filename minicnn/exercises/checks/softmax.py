"""Checks of softmax cross-entropy, scores of 1e4 included."""
import numpy as np
from hypothesis import strategies as st

import minicnn.functional as F
from minicnn.exercises.checker import BACKWARD_TOL, call, close, expect, expect_numeric, unpack
from minicnn.exercises.checks._common import attempt, check, rnd, seeds


softmax_cases = st.fixed_dictionaries({"N": st.integers(1, 4), "K": st.integers(2, 5), "seed": seeds()})
SOFTMAX_FIRST = {"N": 3, "K": 4, "seed": 13}


def softmax_data(c, scale=3.0):
    scores = rnd(c["seed"], (c["N"], c["K"]), scale)
    y = np.random.default_rng(c["seed"] + 1).integers(0, c["K"], c["N"])
    return scores, y


def student_softmax(mod, scores, y):
    loss, dscores = unpack("softmax_cross_entropy", call(mod.softmax_cross_entropy, scores, y), ("loss", "dscores"))
    return np.asarray(loss, dtype=float), dscores


# dscores is compared with numeric gradients (floor 1e-4): a backward's tolerance.
@check("softmax_cross_entropy", softmax_cases, SOFTMAX_FIRST, diagnose=lambda mod: diagnose_softmax(mod),
       tol=BACKWARD_TOL, typical=1e-7)
def softmax_cross_entropy(mod, c, notes):
    scores, y = softmax_data(c)
    case = f"scores ({c['N']}, {c['K']})"
    loss, dscores = student_softmax(mod, scores, y)
    tloss, tds = F.softmax_cross_entropy(scores, y)
    err = max(expect("loss", loss, tloss, case), expect("dscores", dscores, tds, case))
    err = max(err, expect_numeric("dscores", dscores, lambda s: np.array(F.softmax_cross_entropy(s, y)[0]),
                                  scores, None, case, floor=1e-4))
    big = scores * (1e4 / 3)
    loss, dscores = student_softmax(mod, big, y)
    tloss, tds = F.softmax_cross_entropy(big, y)
    case = f"scores ({c['N']}, {c['K']}) of size ~1e4"
    return max(err, expect("loss", loss, tloss, case), expect("dscores", dscores, tds, case))


def diagnose_softmax(mod):
    found = []
    scores, y = softmax_data(SOFTMAX_FIRST)
    n = len(y)
    # Softmax is unchanged by adding a constant to a row: scores + 1e4 only trips exp()'s
    # overflow, while scores * 1e4 (gaps of 1e4) trips log(p) of an underflowed p.
    shifted = attempt(student_softmax, mod, scores + 1e4, y)
    if shifted is None or not (close(shifted[0], F.softmax_cross_entropy(scores, y)[0], 1e-4)
                               and close(shifted[1], F.softmax_cross_entropy(scores, y)[1], 1e-4)):
        found.append("softmax_overflow")
    else:
        res = attempt(student_softmax, mod, scores * 1e4, y)
        if res is not None and not np.all(np.isfinite(res[0])):
            found.append("softmax_log_underflow")
    res = attempt(student_softmax, mod, scores, y)
    if res is None:
        return found
    loss, dscores = res
    tloss, tds = F.softmax_cross_entropy(scores, y)
    if close(loss, tloss * n):
        found.append("softmax_mean_loss")
    if close(dscores, tds * n):
        found.append("softmax_grad_n")
    onehot = np.eye(scores.shape[1])[y]
    if close(dscores, tds + onehot / n) or close(dscores, (tds + onehot / n) * n):
        found.append("softmax_onehot")
    return found
