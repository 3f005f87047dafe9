"""The benchmark's networks written in PyTorch, layer for layer as minicnn builds them.

Only the speed is compared: weights are not shared.  torchvision is not used (its build
must match torch's exactly, and a mismatched one fails at import), so ResNet-18 is written
out here as torchvision defines it -- the architecture minicnn's ``resnet18`` follows.
Imported only in the processes that time PyTorch.
"""
import torch
import torch.nn.functional as TF
from torch import nn


def lenet5(in_channels):
    """minicnn.models.lenet5: conv 5x5 6 - pool - conv 5x5 16 - pool - fc 120 - 84 - 10, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, 10))


class BasicBlock(nn.Module):
    """conv 3x3 - BN - ReLU - conv 3x3 - BN, plus the shortcut, then ReLU.  Where the shape
    changes the shortcut is option "A" in the CIFAR ResNets (strided identity, channels
    zero-padded: no parameters, as minicnn's resnet20) and option "B" in torchvision's
    (a strided 1x1 conv + BN, as minicnn's resnet18)."""

    def __init__(self, cin, cout, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra, self.downsample = stride, cout - cin, None
        if option == "B" and (stride != 1 or cin != cout):
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def shortcut(self, x):
        if self.downsample is not None:
            return self.downsample(x)
        sc = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra:
            sc = TF.pad(sc, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))
        return sc

    def forward(self, x):
        out = TF.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return TF.relu(out + self.shortcut(x))


def resnet20():
    layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(BasicBlock(cin, cout, stride if i == 0 else 1, "A"))
            cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def small_vgg():
    """conv 64-64-pool-128-128-pool-256-pool (3x3 pad 1, ReLU), then Linear(256*4*4 -> 10)."""
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(256 * 16, 10))


def resnet18(num_classes=1000):
    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                   nn.MaxPool2d(3, 2, 1)], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride, "B"), BasicBlock(cout, cout, 1, "B")]
        cin = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))


MODELS = {"lenet5": lenet5, "resnet20": resnet20, "small_vgg": small_vgg, "resnet18": resnet18}

