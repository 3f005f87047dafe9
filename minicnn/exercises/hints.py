"""Targeted hints for the classic mistakes, keyed by a short id.

The checker does not guess from the error's size: for each classic mistake it
computes what that mistake would produce on a fixed small input and compares it
with what the student's function returned.  A match names the mistake.  The ids
are stable (the tests assert them); the texts explain the why.
"""

HINTS = {
    # -- summing over the batch ---------------------------------------------------------
    "batch_sum": "The parameter gradient is not summed over the batch. Every example used the same "
                 "weights, so each one's contribution adds up: dw = sum_n dw_n (e.g. dout.T @ x for "
                 "a linear layer, or `dw += ...` inside the loop over images -- not `dw = ...`).",
    "batch_mean": "The parameter gradient is divided by N. Averaging over the batch belongs to the "
                  "loss (softmax_cross_entropy divides by N once); a layer's backward just sums.",
    "reshape_dx": "dx must have the shape of the layer's original input: reshape it back "
                  "(dx.reshape(x.shape)) when the forward flattened x.",
    "bias": "The bias is missing or wrong: out needs + b (broadcast over the batch and positions), "
            "and db is dout summed over every axis except the bias's own.",
    "bias_grad_positions": "db still has one value per output position: the bias is added at every "
                           "position of every image, so db sums dout over the batch AND the positions: "
                           "db = dout.sum(axis=(0, 2, 3)).",
    "out_size_floor": "The output size must round down: OH = (H + 2*pad - KH) // stride + 1 (floor, as "
                      "PyTorch). When (H + 2*pad - KH) / stride is not whole, the last window would stick "
                      "out of the (padded) input, and it is dropped -- not added (ceil) or read past the edge.",
    # -- linear -------------------------------------------------------------------------
    "linear_flatten": "Right for x of shape (N, D), wrong for (N, d1, d2): flatten each example first, "
                      "x.reshape(N, -1) (N = x.shape[0]), and give dx back the original shape.",
    "linear_weight_layout": "w is (out, in), PyTorch's layout (M, D): out = x @ w.T + b, and dw has w's "
                            "shape, dw = dout.T @ x -- not x @ w and x.T @ dout, which treat w as (in, out).",
    # -- relu ---------------------------------------------------------------------------
    "relu_local_grad": "ReLU's local gradient is 1 where x > 0 and 0 elsewhere, not x itself: "
                       "dx = dout * (x > 0).",
    "relu_dout": "The backward must multiply by the upstream gradient: dx = dout * (x > 0), "
                 "not just the mask.",
    "relu_max_vs_maximum": "np.max(x, 0) is a reduction -- the largest value along axis 0 -- not an "
                           "elementwise max: ReLU is np.maximum(x, 0) (or x * (x > 0)).",
    "relu_kink": "(fine) At exactly x == 0 you pass the gradient through (x >= 0); minicnn uses "
                 "x > 0. ReLU has no derivative at 0, and both are valid subgradients.",
    # -- convolution ------------------------------------------------------------------------
    "conv_pad_forward": "Padding is ignored in the forward: zero-pad x by `pad` on both sides of H "
                        "and W first (np.pad(x, ((0,0), (0,0), (pad,pad), (pad,pad)))), then slide the "
                        "windows over the padded input.",
    "conv_out_size_pad": "The padding is counted once in the output size: x is padded on BOTH sides, so "
                         "OH = (H + 2*pad - KH) // stride + 1 (your output misses the last row and column).",
    "conv_pad_other": "Right with pad=0, wrong with pad>0. Zero-pad x by `pad` on every side of H and W "
                      "(np.pad(x, ((0,0), (0,0), (pad,pad), (pad,pad)))), slide the windows over the padded "
                      "input from its corner, and size the output OH = (H + 2*pad - KH) // stride + 1.",
    "im2col_row_order": "The rows of the columns are in the wrong order: row (c*KH + p)*KW + q must hold "
                        "tap (p, q) of channel c -- channel slowest -- which is the order of "
                        "w.reshape(F, -1), so that the product lines weights up with their inputs.",
    "conv_pad_backward": "Padding is forgotten in the backward: it is right with pad=0 and wrong "
                         "with pad>0. dw must be computed from the *padded* input windows, and dx "
                         "accumulated into a padded array whose border is then cropped off.",
    "pad_crop": "dx still has the padding's border (or the crop is wrong): return "
                "dxpad[:, :, pad:pad+H, pad:pad+W]. Beware `pad:-pad`: with pad=0 it is an empty slice.",
    "stride": "The stride is handled wrongly: right with stride=1, wrong with stride>1. Output "
              "(i, j) reads the window starting at (i*stride, j*stride), and its gradient goes back "
              "to that same window.",
    "conv_flip": "You flipped the kernel (a true convolution). Deep-learning 'convolution' is "
                 "cross-correlation: out[i, j] = sum_{p,q} w[p, q] * x[i*s+p, j*s+q], no flip.",
    "overlap_add": "Overlapping windows must ADD their gradients: right when windows do not "
                   "overlap (stride >= window), wrong when they do. Use `dx[...] += ...`, not "
                   "`dx[...] = ...`.",
    "pool_grad_window": "Max pooling's gradient goes only to the maximum of each window (the other "
                        "values did not change the output): dx is zero elsewhere -- it is not spread over "
                        "the window, which is average pooling's backward.",
    "pool_ties_all": "On a tie you send the gradient to every maximum of the window, so it is "
                     "counted several times (the gradients of a window no longer add up to dout). "
                     "Route it to one maximum -- the first in row-major order (np.argmax), as "
                     "minicnn and PyTorch do.",
    "pool_ties_other": "(fine) On ties your gradient goes to a maximum other than the first; any one "
                       "maximum is a valid subgradient, but minicnn and PyTorch pick the first "
                       "(np.argmax over the flattened window).",
    "pool_pad_zero": "The padding wins the max: you padded with 0, so a window of negative numbers "
                     "returns 0, a value that is not in the input. Pad with -inf (np.pad(x, ..., "
                     "constant_values=-np.inf)): padding must never be the maximum.",
    "avg_exclude_pad": "Each window is divided by its count of real pixels (PyTorch's "
                       "count_include_pad=False). minicnn's avg_pool2d counts the zero padding: divide "
                       "every window by size*size.",
    "avg_grad_scale": "Average pooling's backward must divide too: each of the size*size inputs of a "
                      "window moved the output by 1/(size*size), so each gets dout / (size*size).",
    # -- batch norm -----------------------------------------------------------------------
    "bn_dx_constant_stats": "dx treats the batch mean and variance as constants (dx = dout * gamma "
                            "/ std). In training they depend on every x, which adds the terms "
                            "dx = gamma/std * (dout - mean(dout) - xhat * mean(dout * xhat)), "
                            "means over the batch (and H, W).",
    "bn_dx_no_var_term": "dx has the mean's term but not the variance's: the variance depends on "
                         "x too, which adds - xhat * mean(dout * xhat) inside "
                         "gamma/std * (dout - mean(dout) - xhat * mean(dout * xhat)).",
    "bn_dx_no_mean_term": "dx has the variance's term but not the mean's: subtracting the batch "
                          "mean adds - mean(dout) inside gamma/std * (dout - mean(dout) - "
                          "xhat * mean(dout * xhat)).",
    "bn_dx_terms": "batchnorm dx is wrong. Write the graph x -> mu -> xc -> var -> std -> xhat -> out "
                   "and backpropagate node by node, or use the compact form "
                   "dx = gamma/std * (dout - mean(dout) - xhat * mean(dout * xhat)).",
    "bn_per_channel": "For x of shape (N, C, H, W) the statistics are per channel, pooled over "
                      "N, H and W (axis=(0, 2, 3)); per (C, H, W) position is the fully connected "
                      "form, and it breaks the convolution's weight sharing. To reuse the (N, D) "
                      "code, move C last first: x.transpose(0, 2, 3, 1).reshape(-1, C) -- a bare "
                      "x.reshape(-1, C) mixes the channels.",
    "bn_biased_normalise": "Normalise with the biased batch variance (divide by m: np.var's default). "
                           "The unbiased m/(m-1) variance is for the running estimate only.",
    "bn_running_unbiased": "The running variance must use the unbiased batch variance (times "
                           "m/(m-1), m values per feature), as PyTorch does; normalise the batch "
                           "itself with the biased one.",
    "bn_momentum": "momentum is PyTorch's: the weight of the NEW batch statistic, running = "
                   "(1 - momentum) * running + momentum * batch. (CS231n's momentum=0.9 weights the "
                   "old value: its 0.9 is our 0.1.)",
    "bn_running_in_place": "Update running_mean and running_var in place (running_mean *= ...; "
                           "running_mean += ..., or running_mean[...] = ...): rebinding the name "
                           "leaves the caller's arrays unchanged.",
    "bn_eval_batch_stats": "In evaluation (training=False) use running_mean and running_var, not "
                           "the statistics of the batch at hand, and leave them unchanged.",
    # -- dropout ----------------------------------------------------------------------------
    "dropout_not_inverted": "Dropout is not inverted: in training the kept values must be scaled "
                            "by 1/(1-p) so that their expectation equals x and evaluation is the "
                            "identity.",
    "dropout_keep_prob": "p is the probability of DROPPING a unit (PyTorch's convention), not of "
                         "keeping it: keep a value where rng.random(x.shape) >= p.",
    "dropout_global_rng": "The mask must come from the rng argument: two calls with Generators of "
                          "the same seed must drop the same units (np.random.rand uses hidden "
                          "global state, so runs are not reproducible).",
    "dropout_eval": "In evaluation (training=False) inverted dropout is the identity: return x "
                    "unchanged, no mask and no scaling.",
    "dropout_backward_mask": "The backward must apply the forward's own mask and scale: "
                             "dx = dout * mask / (1-p) with the mask kept in the cache.",
    # -- LRN ------------------------------------------------------------------------------
    "lrn_alpha_size": "alpha is not divided by size: this is the AlexNet paper's form. minicnn, "
                      "Caffe and PyTorch use k + alpha/size * sum(x^2) (the paper's alpha=1e-4 is "
                      "alpha=5e-4 here).",
    "lrn_window": "The channel window is off: for channel c it runs from c - size//2 to "
                  "c + (size-1)//2, clipped to [0, C).",
    "lrn_cross_terms": "Each x_j also sits in the denominators of its neighbours' outputs: "
                       "dx_j = dout_j * s_j^-beta - 2*alpha*beta/size * x_j * "
                       "sum_{c: j in window(c)} dout_c * x_c * s_c^(-beta-1).",
    # -- softmax ----------------------------------------------------------------------------
    "softmax_overflow": "Softmax overflows: exp(1e4) is inf. Subtract each row's maximum from the "
                        "scores first -- softmax is unchanged and the largest exponent is exp(0) = 1.",
    "softmax_log_underflow": "The loss is inf for large scores although the gradient is fine: "
                             "the probability of a class 1e4 below the maximum underflows to 0 and "
                             "log(0) = -inf. Take the log analytically: log p = shifted - "
                             "log(sum(exp(shifted))).",
    "softmax_mean_loss": "The loss is summed over the batch: it is the MEAN of -log p[y] over the "
                         "N examples.",
    "softmax_grad_n": "dscores is not divided by N: the loss is a mean over the batch, so "
                      "dscores = (softmax - onehot(y)) / N.",
    "softmax_onehot": "dscores must subtract 1 at the correct class: (softmax - onehot(y)) / N.",
    # -- residual ---------------------------------------------------------------------------
    "residual_shortcut": "The shortcut's gradient is missing: x reaches the sum directly too, so "
                         "dx = (gradient at the sum) + (gradient back through the branch's convs).",
    "residual_final_relu": "The ReLU after the addition is skipped in the backward: first "
                           "dsum = dout * (out > 0), then split dsum between the shortcut and the "
                           "branch.",
    "residual_shortcut_forward": "out must be relu(x + conv(relu(conv(x)))): add x (the shortcut) "
                                 "before the last ReLU.",
    # -- architecture questions -------------------------------------------------------------
    "size_pad_forgotten": "The padding is missing from the output size: OH = (H + 2*pad - K) // stride + 1 "
                          "(padding adds `pad` rows at the top AND at the bottom).",
    "shape_order": "The shape is in the slides' order (H, W, C); minicnn's (and PyTorch's) is (C, H, W): "
                   "the lecture's 55x55x96 is (96, 55, 55).",
    "depth_is_filters": "The output depth is the number of filters, not the input's channels: each "
                        "filter spans all C input channels and gives ONE output channel.",
    "params_bias": "The biases are missing: a conv or fc layer has one bias per output channel "
                   "(AlexNet CONV1: 11*11*3*96 weights + 96 biases = 34,944).",
    "params_in_channels": "The input channels are missing from the weights: every filter spans the "
                          "full depth of its input, K*K*C weights (C = input channels), not K*K.",
    "pool_no_params": "A pooling layer has no parameters: a max (or an average) of its window is a "
                      "fixed function; there is nothing to learn, so 0.",
    "vgg_relu_counted": "ReLU's outputs are counted too: the lecture's table applies ReLU in place, so "
                        "only the INPUT and the CONV, POOL and FC outputs hold new values. (minicnn's "
                        "summary does count them -- its 'total activations' is what minicnn stores.)",
    "vgg_input_forgotten": "The input image is missing from the memory: the lecture's table starts with "
                           "INPUT: [224x224x3] memory 224*224*3 = 150K.",
    "rf_sum_kernels": "Receptive fields do not add up kernel sizes: each extra KxK layer (stride 1) "
                      "widens it by K - 1, so L layers see 1 + L*(K - 1) -- three 3x3 convs see 7, not 9.",
    "ops_flops_2x": "Your count is twice the checker's: it counts MULTIPLY-ADDS (one multiply and its "
                    "add = one op, as the lecture's 854M and the papers' tables do); FLOPs count the "
                    "multiply and the add separately, a factor of 2.",
    "inception_pool_depth": "The pooling branch is missing from the concatenated depth: the 3x3 max "
                            "pool (stride 1, pad 1) keeps all C input channels, and they are concatenated "
                            "too (the naive module's depth only grows: 128 + 192 + 96 + 256 = 672).",
    "inception_concat_reduce": "The 1x1 reduce convs' channels are counted in the output: only the last "
                               "layer of each branch is concatenated (ch1x1 + ch3x3 + ch5x5 + pool_proj).",
    "resnet_bn_params": "The BatchNorm parameters are missing: each BatchNorm2d learns a scale and a shift "
                        "per channel (2C parameters).",
    "resnet_conv_bias": "minicnn's ResNet convs have no bias: the BatchNorm that follows each subtracts the "
                        "mean (which would cancel a bias) and adds its own shift.",
    "gap_keeps_hw": "minicnn's GlobalAvgPool2d flattens: (C, H, W) -> (C,), one mean per channel, so a "
                    "Linear can follow directly (PyTorch's AdaptiveAvgPool2d(1) gives (C, 1, 1)).",
    "gap_no_params": "Global average pooling has no parameters: it is a mean per channel. That is the "
                     "point -- the fc it replaces holds C*H*W*outputs weights.",
    "depthwise_full": "The depthwise conv is counted as a full 3x3 conv: it has ONE 3x3 filter per input "
                      "channel (groups = C), so it costs OH*OW*9*C, not OH*OW*9*C*C.",
    "dense_input_channels": "The block's input channels are missing: a dense block concatenates its input "
                            "too, so it outputs k0 + L*k channels (DenseNet-121's first block: 64 + 6*32 = 256).",
    "dense_bn_params": "The BatchNorm parameters are missing: each of the two BatchNorms of a dense layer "
                       "learns a scale and a shift per channel of its input.",
    "dense_no_growth": "Each dense layer reads the concatenation of the block input and EVERY earlier "
                       "layer: layer l's 1x1 conv has k0 + (l - 1)*k input channels, not k0.",
    # -- blocks ---------------------------------------------------------------------------
    "concat_order": "The branches are concatenated in another order: the checker (and GoogLeNet, and "
                    "minicnn's nn.Inception) expects b1, b2, b3, b4 -- the next layer's weights are "
                    "tied to channel positions, so the order is part of the block.",
    "concat_axis": "The outputs are concatenated on the wrong axis: depth concatenation joins the "
                   "CHANNELS, axis=1 of (N, C, H, W) -- axis 0 would stack images, 2 and 3 the map.",
    "bottleneck_1x1": "conv1 and conv3 must be 1x1 convs: the bottleneck first cuts the channels to C/4 "
                      "with a cheap 1x1, runs the 3x3 there, and restores C with another 1x1 -- that is "
                      "what makes it cheaper than two 3x3 convs on C channels.",
    "se_per_channel": "The SE gate is computed per position: squeeze FIRST -- average x over H and W, "
                      "one value per channel -- then one gate per channel scales the channel's whole map "
                      "(out = x * g[:, :, None, None]).",
    "dense_concat_input": "The block's output must include its input: a dense block returns the "
                          "concatenation of x and every layer's new features, k0 + L*k channels.",
}


def text(hint_id):
    """The hint's sentence."""
    return HINTS[hint_id]
