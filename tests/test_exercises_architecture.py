"""The pooling and architecture exercises (issue 19): average pooling and padded max
pooling, the lecture's questions (sizes, parameters, memory, operation counts) and the
blocks built from minicnn's layers.  As in test_exercises.py: the correct solution
passes, and each classic mistake -- the solution broken in one place -- fails with its hint."""
import pathlib

import pytest

from minicnn import exercises
from minicnn.exercises import checker, report
from test_exercises import SOLUTION, by_name, cli, mutate, write

ARCH_SOLUTION = (pathlib.Path(__file__).parent / "fixtures" / "architecture_solution.py").read_text()


def arch(*changes):
    return mutate(*changes, source=ARCH_SOLUTION)



AVG_DIVIDE = "dout[:, :, i, j][:, :, None, None] / (size * size)"

# (name, source, function expected to fail, hint id it must give)
MUTANTS = [
    ("max pool padded with zeros",
     mutate(("(pad, pad), (pad, pad)), constant_values=-np.inf)", "(pad, pad), (pad, pad)))")),
     "max_pool_forward", "pool_pad_zero"),
    ("average pool divides by the real pixels only",
     mutate((".mean(axis=(2, 3))", ".sum(axis=(2, 3)) / _real(x.shape, size, stride, pad, i, j)"))
     + '''

def _real(shape, size, stride, pad, i, j):
    h, w = shape[2:]
    rows = min(i * stride + size, h + pad) - max(i * stride, pad)
    cols = min(j * stride + size, w + pad) - max(j * stride, pad)
    return rows * cols
''', "avg_pool_forward", "avg_exclude_pad"),
    ("average pool backward does not divide", mutate((AVG_DIVIDE, "dout[:, :, i, j][:, :, None, None]")),
     "avg_pool_backward", "avg_grad_scale"),
    ("overlapping average windows assigned, not added",
     mutate(("dxp[:, :, i * stride:i * stride + size, j * stride:j * stride + size] += ",
             "dxp[:, :, i * stride:i * stride + size, j * stride:j * stride + size] = ")),
     "avg_pool_backward", "overlap_add"),
    # -- the lecture's questions
    ("output size without the padding", arch(("(h + 2 * pad - kernel_size)", "(h - kernel_size)"),
                                             ("(w + 2 * pad - kernel_size)", "(w - kernel_size)")),
     "conv_output_shape", "size_pad_forgotten"),
    ("output size with the padding once", arch(("(h + 2 * pad - kernel_size)", "(h + pad - kernel_size)"),
                                               ("(w + 2 * pad - kernel_size)", "(w + pad - kernel_size)")),
     "conv_output_shape", "conv_out_size_pad"),
    ("output size rounded up", arch(("(h + 2 * pad - kernel_size) // stride", "-(-(h + 2 * pad - kernel_size) // stride)"),
                                    ("(w + 2 * pad - kernel_size) // stride", "-(-(w + 2 * pad - kernel_size) // stride)")),
     "conv_output_shape", "out_size_floor"),
    ("output shape in the slides' H x W x C", arch(("return num_filters, oh, ow", "return oh, ow, num_filters")),
     "conv_output_shape", "shape_order"),
    ("output depth = input channels", arch(("return num_filters, oh, ow", "return c, oh, ow")),
     "conv_output_shape", "depth_is_filters"),
    ("conv parameters without the bias",
     arch(("(kernel_size * kernel_size * in_channels + 1) * num_filters", "kernel_size * kernel_size * in_channels * num_filters")),
     "conv_params", "params_bias"),
    ("conv parameters without the input channels",
     arch(("(kernel_size * kernel_size * in_channels + 1) * num_filters", "(kernel_size * kernel_size + 1) * num_filters")),
     "conv_params", "params_in_channels"),
    ("pool parameters like a conv's", arch(("def pool_params(input_shape, size, stride):\n    return 0",
                                            "def pool_params(input_shape, size, stride):\n    return size * size * input_shape[0]")),
     "pool_params", "pool_no_params"),
    ("VGG memory with ReLU outputs", arch(("            c = v\n        activations += c * h * w",
                                           "            c = v\n            activations += c * h * w\n        activations += c * h * w"),
                                          ("        activations += out\n", "        activations += 2 * out if out != fc[-1] else out\n")),
     "vgg_memory", "vgg_relu_counted"),
    ("VGG memory without the input", arch(("activations, params = c * h * w, 0", "activations, params = 0, 0")),
     "vgg_memory", "vgg_input_forgotten"),
    ("VGG parameters without biases", arch(("params += (3 * 3 * c + 1) * v", "params += 3 * 3 * c * v"),
                                           ("params += (width + 1) * out", "params += width * out")),
     "vgg_memory", "params_bias"),
    ("receptive field as the sum of kernels", arch(("rf = 1 + num_layers * (kernel_size - 1)", "rf = num_layers * kernel_size")),
     "stacked_convs", "rf_sum_kernels"),
    ("naive inception counted in FLOPs", arch(("ops = h * w * c * (ch1x1", "ops = 2 * h * w * c * (ch1x1")),
     "inception_naive", "ops_flops_2x"),
    ("naive inception without the pool's channels", arch(("(ch1x1 + ch3x3 + ch5x5 + c, h, w)", "(ch1x1 + ch3x3 + ch5x5, h, w)")),
     "inception_naive", "inception_pool_depth"),
    ("inception counted in FLOPs", arch(("    ops = h * w * (c * ch1x1", "    ops = 2 * h * w * (c * ch1x1")),
     "inception_bottleneck", "ops_flops_2x"),
    ("inception depth with the reduce convs", arch(("(ch1x1 + ch3x3 + ch5x5 + pool_proj, h, w)",
                                                    "(ch1x1 + ch3x3red + ch3x3 + ch5x5red + ch5x5 + pool_proj, h, w)")),
     "inception_bottleneck", "inception_concat_reduce"),
    ("residual block without BatchNorm", arch(("return 2 * (9 * channels * channels) + 2 * (2 * channels)",
                                               "return 2 * (9 * channels * channels)"),
                                              (" + 2 * (w + w + channels)", "")),
     "residual_params", "resnet_bn_params"),
    ("residual convs with a bias", arch(("return 2 * (9 * channels * channels) + 2 * (2 * channels)",
                                         "return 2 * (9 * channels * channels + channels) + 2 * (2 * channels)")),
     "residual_params", "resnet_conv_bias"),
    ("fc without its bias", arch(("c * h * w * num_outputs + num_outputs", "c * h * w * num_outputs")),
     "gap_vs_fc", "params_bias"),
    ("GAP output (C, 1, 1)", arch(("return (c,), 0,", "return (c, 1, 1), 0,")), "gap_vs_fc", "gap_keeps_hw"),
    ("GAP with parameters", arch(("return (c,), 0,", "return (c,), c,")), "gap_vs_fc", "gap_no_params"),
    ("separable cost in FLOPs", arch(("return oh * ow * 9 * c * out_channels, oh * ow * 9 * c + oh * ow * c * out_channels",
                                      "return 2 * oh * ow * 9 * c * out_channels, 2 * (oh * ow * 9 * c + oh * ow * c * out_channels)")),
     "depthwise_separable_cost", "ops_flops_2x"),
    ("depthwise counted as a full conv", arch(("oh * ow * 9 * c + oh * ow * c * out_channels",
                                               "oh * ow * 9 * c * c + oh * ow * c * out_channels")),
     "depthwise_separable_cost", "depthwise_full"),
    ("SE without biases", arch(("return channels * hidden + hidden + hidden * channels + channels",
                                "return channels * hidden + hidden * channels")),
     "se_params", "params_bias"),
    ("dense block forgets its input", arch(("return num_input_features + num_layers * growth_rate, params",
                                            "return num_layers * growth_rate, params")),
     "dense_block", "dense_input_channels"),
    ("dense block without BatchNorm", arch(("params += 2 * c + c * inter + 2 * inter + 9", "params += c * inter + 9")),
     "dense_block", "dense_bn_params"),
    ("dense layers all read k0 channels", arch(("c = num_input_features + i * growth_rate", "c = num_input_features")),
     "dense_block", "dense_no_growth"),
    # -- the blocks
    ("inception concatenated in reverse", arch(("return np.concatenate(outs, axis=1)", "return np.concatenate(outs[::-1], axis=1)")),
     "InceptionModule", "concat_order"),
    ("inception concatenated on the batch axis", arch(("return np.concatenate(outs, axis=1)", "return np.concatenate(outs, axis=0)")),
     "InceptionModule", "concat_axis"),
    ("bottleneck backward without the shortcut", arch(("        return d + ds\n", "        return d\n")),
     "BottleneckBlock", "residual_shortcut"),
    ("bottleneck without its 1x1", arch(("nn.Conv2d(channels, w, 1, bias=False, rng=rng)",
                                         "nn.Conv2d(channels, w, 3, padding=1, bias=False, rng=rng)")),
     "BottleneckBlock", "bottleneck_1x1"),
    ("SE gate per position", arch(("        self.g = self.sigmoid(self.fc2(self.relu(self.fc1(self.pool(x)))))\n"
                                   "        return x * self.g[:, :, None, None]",
                                   "        n, c, h, w = x.shape\n"
                                   "        s = x.transpose(0, 2, 3, 1).reshape(-1, c)\n"
                                   "        g = self.sigmoid(self.fc2(self.relu(self.fc1(s))))\n"
                                   "        return x * g.reshape(n, h, w, c).transpose(0, 3, 1, 2)")),
     "SEBlock", "se_per_channel"),
    ("dense block without its input", arch(("            features = np.concatenate([features, new], axis=1)\n        return features\n",
                                            "            features = np.concatenate([features, new], axis=1)\n"
                                            "        return features[:, x.shape[1]:]\n")),
     "DenseBlock", "dense_concat_input"),
]


@pytest.mark.parametrize("label, source, fn, hint", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_classic_mistake_fails_with_its_hint(tmp_path, label, source, fn, hint):
    r = by_name(exercises.check_file(write(tmp_path, source), [fn]))[fn]
    assert r.status in (checker.FAILED, checker.ERROR), (label, r)
    assert hint in r.hints, (label, r.hints, r.message)
    assert r.message
    assert report.exit_code([r]) == 1


def test_correct_architecture_answers_pass(tmp_path):
    path = write(tmp_path, ARCH_SOLUTION)
    results = exercises.check_file(path, ["architecture"])
    assert [(r.name, r.status) for r in results] == [(n, checker.PASSED) for n in
                                                     exercises.function_names(["architecture"])]
    assert report.exit_code(results) == 0


def test_the_lectures_numbers_are_minicnns():
    """The lecture's answers, as the checker's references (minicnn.summary) compute them."""
    from minicnn.exercises.checks import architecture as A
    assert A.conv_shape((3, 227, 227), 96, 11, 4, 0) == (96, 55, 55)
    assert A.conv_params_reference(3, 96, 11) == 34_944 and A.pool_params_reference((96, 55, 55), 3, 2) == 0
    activations, params = A.vgg_reference(*A.VGG16)
    assert params == 138_357_544 and 15.2e6 < activations < 15.3e6   # the slide's rows (its "24M" total is a slip)
    assert A.stack_reference(3, 3, 64) == (7, 27 * 64 * 64, 49 * 64 * 64)
    assert A.naive_reference((256, 28, 28), 128, 192, 96) == ((672, 28, 28), 854_196_224)   # "854M ops"
    assert A.bottleneck_reference(*A.GOOGLENET_3A)[0] == (256, 28, 28)
    assert A.gap_reference((1024, 7, 7), 1000) == ((1024,), 0, 50_177_000)
    assert A.dense_reference(64, 6, 32, 4)[0] == 256                   # DenseNet-121's first block


def test_an_answer_copied_from_the_slides_fails(tmp_path):
    src = ARCH_SOLUTION + '''

def conv_output_shape(input_shape, num_filters, kernel_size, stride, pad):
    return 96, 55, 55


def conv_params(in_channels, num_filters, kernel_size):
    return 34944
'''
    results = by_name(exercises.check_file(write(tmp_path, src), ["conv_output_shape", "conv_params"]))
    assert {r.status for r in results.values()} == {checker.FAILED}
    assert "conv_output_shape(" in results["conv_output_shape"].message   # names the drawn case


def test_correct_blocks_pass_and_skeletons_do_not(tmp_path):
    results = exercises.check_file(write(tmp_path, ARCH_SOLUTION), ["blocks"])
    assert [(r.name, r.status) for r in results] == [(n, checker.PASSED) for n in exercises.function_names(["blocks"])]
    assert all(r.error <= r.tolerance for r in results)
    for name in ("architecture", "blocks"):
        out = tmp_path / f"{name}.py"
        assert exercises.main_new(name, str(out)) == 0
        results = exercises.check_file(out)
        assert [r.name for r in results] == exercises.function_names([name])
        assert {r.status for r in results} == {checker.NOT_IMPLEMENTED} and report.exit_code(results) == 1


def test_skeleton_wrong_cheating_and_correct_architecture_files_exit_1_1_1_0(tmp_path):
    assert cli("new", "architecture", "--out", "skeleton.py", cwd=tmp_path).returncode == 0
    wrong = write(tmp_path, MUTANTS[-1][1], "wrong.py")
    cheat = write(tmp_path, BLOCK_CHEATS[0][1], "cheat.py")
    good = write(tmp_path, ARCH_SOLUTION, "good.py")
    codes = [cli("check", f, cwd=tmp_path) for f in ("skeleton.py", wrong, cheat, good)]
    assert [c.returncode for c in codes] == [1, 1, 1, 0], [c.stdout[-500:] for c in codes]
    assert "12 not implemented" in codes[0].stdout
    assert "FAILED" in codes[1].stdout and "hint:" in codes[1].stdout and "REFUSED" in codes[2].stdout
    assert "17 passed" in codes[3].stdout


# minicnn's own blocks handed in, each in another disguise.
BLOCK_CHEATS = [
    ("an alias", "import minicnn.nn as nn\nInceptionModule = nn.Inception\n", "InceptionModule"),
    ("a subclass", "import minicnn.nn as nn\n\n\nclass BottleneckBlock(nn.Bottleneck):\n"
                   "    def __init__(self, channels, rng=None):\n        super().__init__(channels, channels // 4, rng=rng)\n",
     "BottleneckBlock"),
    ("a wrapper", '''
import minicnn.nn as nn


class SEBlock(nn.Module):
    def __init__(self, channels, reduction=16, rng=None):
        super().__init__()
        self.se = nn.SqueezeExcitation(channels, reduction, rng=rng)

    def forward(self, x):
        return self.se(x)

    def backward(self, dout):
        return self.se.backward(dout)
''', "SEBlock"),
    ("minicnn's concatenation", '''
import minicnn.nn as nn


class InceptionModule(nn.Module):
    def __init__(self, in_channels, ch1x1=64, ch3x3red=96, ch3x3=128, ch5x5red=16, ch5x5=32, pool_proj=32, rng=None):
        super().__init__()
        self.b1 = nn.Conv2d(in_channels, ch1x1, 1, rng=rng)
        self.cat = nn.ParallelConcat(self.b1)

    def forward(self, x):
        return self.cat(x)

    def backward(self, dout):
        return self.cat.backward(dout)
''', "InceptionModule"),
]


@pytest.mark.parametrize("label, source, fn", BLOCK_CHEATS, ids=[c[0] for c in BLOCK_CHEATS])
def test_minicnns_own_blocks_are_refused(tmp_path, label, source, fn):
    r = by_name(exercises.check_file(write(tmp_path, source), [fn]))[fn]
    assert r.status == checker.REFUSED and "minicnn" in r.message, (label, r)


def test_pooling_solutions_pass(tmp_path):
    results = exercises.check_file(write(tmp_path, SOLUTION), ["maxpool", "avgpool"])
    assert [(r.name, r.status) for r in results] == [
        (n, checker.PASSED) for n in ("max_pool_forward", "max_pool_backward", "avg_pool_forward",
                                      "avg_pool_backward")]


def test_a_max_pool_without_pad_fails_on_padded_cases(tmp_path):
    """A solution of the old, unpadded exercise is not accepted: the checks draw pad > 0."""
    src = mutate(("def max_pool_forward(x, size, stride, pad=0):\n    x = np.pad(x, ((0, 0), (0, 0), (pad, pad), "
                  "(pad, pad)), constant_values=-np.inf)", "def max_pool_forward(x, size, stride, pad=0):"))
    r = by_name(exercises.check_file(write(tmp_path, src), ["max_pool_forward"]))["max_pool_forward"]
    assert r.status == checker.FAILED and "pad=1" in r.message
