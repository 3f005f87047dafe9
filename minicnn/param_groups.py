"""Parameter groups: one optimizer, different hyper-parameters for different parameters.

For fine-tuning a pretrained backbone slower than a new head, PyTorch's convention: an
optimizer takes, instead of its parameters, a list of dicts, each with its ``"params"``
and any hyper-parameters of its own; the others come from the optimizer's keywords
(the module docstring of ``minicnn/optim.py`` shows the dicts written by hand)::

    opt = SGD([{"params": head}, {"params": backbone, "lr": 0.001}], lr=0.01, momentum=0.9)
    opt = SGD(fine_tuning_groups(model, head="fc", backbone_lr=0.001), lr=0.01, momentum=0.9)

This module turns the ``params`` argument into groups and checks them
(``split_groups``), builds the usual two (``fine_tuning_groups``), and makes a
hyper-parameter readable and settable as one attribute (``GroupSetting``).  The update
rules, and how each group's values drive them, are in ``minicnn/optim.py``.
"""
import math

from minicnn.checks import check_number

__all__ = ["split_groups", "fine_tuning_groups", "GroupSetting"]


def split_groups(owner, params):
    """``params`` -- parameters, or a list of group dicts -- as a list of
    ``(parameters, the group's own hyper-parameters)`` pairs; a plain iterable of parameters
    is one group with none of its own.

    Refused with a ValueError naming ``owner``: no parameters, an empty group, a group
    without "params", a mix of dicts and parameters, a parameter that is not a float
    ``.data``/``.grad`` pair, a parameter twice (in one group or in two).
    """
    if isinstance(params, dict):
        raise ValueError(f"{owner}: expected parameters or a list of param-group dicts, received "
                         "a single dict (put it in a list)")
    params = list(params)
    if not params:
        raise ValueError(f"{owner}: expected a non-empty iterable of parameters, received none")
    dicts = [isinstance(p, dict) for p in params]
    if not any(dicts):
        groups = [(params, {})]
    elif not all(dicts):
        raise ValueError(f"{owner}: expected either parameters or a list of param-group dicts, "
                         "received a mix of both")
    else:
        groups = [(_group_params(f"{owner}: param group {g}", group),
                   {k: v for k, v in group.items() if k != "params"})
                  for g, group in enumerate(params)]
    _check_params(owner, [ps for ps, _ in groups])
    return groups


def _group_params(where, group):
    """The parameters of one group dict, as a non-empty list."""
    if "params" not in group:
        raise ValueError(f"{where}: expected a 'params' entry, received the keys {sorted(group)}")
    ps = group["params"]
    if hasattr(ps, "data"):                  # a single Parameter, as PyTorch allows
        return [ps]
    try:
        ps = list(ps)
    except TypeError:
        raise ValueError(f"{where}: expected 'params' to be a list of parameters, received "
                         f"{type(ps).__name__}") from None
    if not ps:
        raise ValueError(f"{where}: expected a non-empty list of parameters, received none")
    return ps


def _check_params(owner, groups):
    """Every parameter is a float array pair (.data, .grad), in exactly one group, once:
    a parameter listed twice would be updated twice per step."""
    seen = {}                                # id -> the group it was first seen in
    i = 0
    for g, ps in enumerate(groups):
        for p in ps:
            if not (hasattr(p, "data") and hasattr(p, "grad") and hasattr(p.data, "shape")):
                raise ValueError(f"{owner}: expected parameters with .data and .grad arrays "
                                 f"(nn.Parameter), received {type(p).__name__} at position {i}")
            if p.data.dtype.kind != "f":
                raise ValueError(f"{owner}: expected float parameters, received dtype "
                                 f"{p.data.dtype} at position {i}")
            if id(p) in seen:
                where = f" (in param groups {seen[id(p)]} and {g})" if len(groups) > 1 else ""
                raise ValueError(f"{owner}: parameter at position {i} appears twice{where}; it "
                                 "would be updated twice per step")
            seen[id(p)] = g
            i += 1


def fine_tuning_groups(model, head, backbone_lr):
    """The two usual param groups for fine-tuning: the new head first, then the backbone.

        opt = SGD(fine_tuning_groups(model, head="fc", backbone_lr=0.001), lr=0.01, momentum=0.9)

    The head is every parameter whose name (``model.named_parameters()``) is ``head`` or
    starts with ``head + "."`` (``head`` may be a tuple of such prefixes); it takes the
    optimizer's own lr -- which ``opt.lr``, the history and the log then report.  The backbone
    is every other parameter, at ``backbone_lr``.  For more groups, or other hyper-parameters
    per group, write the dicts (see the module docstring).
    """
    op = "fine_tuning_groups"
    prefixes = (head,) if isinstance(head, str) else tuple(head) if isinstance(head, (tuple, list)) else ()
    if not prefixes or not all(isinstance(h, str) and h for h in prefixes):
        raise ValueError(f"{op}: expected head as a parameter-name prefix (a str, or a tuple of "
                         f"them), received {head!r}")
    backbone_lr = check_number(op, "backbone_lr", backbone_lr, low=0, high=math.inf,
                               high_open=True)
    named = list(model.named_parameters())
    in_head = [any(n == h or n.startswith(h + ".") for h in prefixes) for n, _ in named]
    if not any(in_head):
        tops = sorted({n.split(".")[0] for n, _ in named})
        raise ValueError(f"{op}: no parameter name starts with {' or '.join(prefixes)}; the "
                         f"model's top-level names are {tops}")
    if all(in_head):
        raise ValueError(f"{op}: every parameter is in the head {head!r}: no backbone is left")
    return [{"params": [p for (_, p), h in zip(named, in_head) if h]},
            {"params": [p for (_, p), h in zip(named, in_head) if not h], "lr": backbone_lr}]


class GroupSetting:
    """A hyper-parameter as an optimizer attribute (``lr = GroupSetting()`` in the class body):
    ``opt.lr`` reads the first group's value; ``opt.lr = x`` checks x and sets it in every
    group (through ``opt._set_in_every_group``), which is what a single-group optimizer
    needs.  With several groups, write ``opt.param_groups[g]["lr"]`` to change one."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, opt, owner=None):
        return self if opt is None else opt.param_groups[0][self.name]

    def __set__(self, opt, value):
        opt._set_in_every_group(self.name, value)
