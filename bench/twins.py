"""PyTorch twins of the gallery nets: the same layers, batch, optimizer and initialization as the configs
(Caffe's xavier: U(±√(3/fan_in)); gaussian where the config says so; biases 0; Caffe's ceil-rounded pooling;
L2 decay added to the gradient, per-parameter multipliers as parameter groups).  Benchmark-only (torch)."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def xavier(layer, std=None):
    fan_in = layer.weight[0].numel()
    with torch.no_grad():
        if std is None:
            b = math.sqrt(3.0 / fan_in)
            layer.weight.uniform_(-b, b)
        elif std == 0:
            layer.weight.zero_()
        else:
            layer.weight.normal_(0, std)
        layer.bias.zero_()
    return layer


class LeNet(nn.Module):                      # configs/mnist_lenet.yaml
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = xavier(nn.Conv2d(1, 20, 5)), xavier(nn.Conv2d(20, 50, 5))
        self.ip1, self.ip2 = xavier(nn.Linear(800, 500)), xavier(nn.Linear(500, 10))

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2, 2, ceil_mode=True)
        x = F.max_pool2d(self.conv2(x), 2, 2, ceil_mode=True)
        return self.ip2(F.relu(self.ip1(x.flatten(1))))


class MLP(nn.Module):                        # configs/mnist_mlp_adadelta.yaml
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.out = xavier(nn.Linear(784, 1000)), xavier(nn.Linear(1000, 1000)), \
            xavier(nn.Linear(1000, 10))

    def forward(self, x):
        return self.out(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


class DropoutFC(nn.Module):                  # configs/mnist_dropout_fc.yaml
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = xavier(nn.Linear(784, 1200), 0.01), xavier(nn.Linear(1200, 1200), 0.01)
        self.out = xavier(nn.Linear(1200, 10), 0)

    def forward(self, x):
        x = F.dropout(x.flatten(1), 0.2, self.training)
        x = F.dropout(F.relu(self.fc1(x)), 0.5, self.training)
        x = F.dropout(F.relu(self.fc2(x)), 0.5, self.training)
        return self.out(x)


class CNN(nn.Module):                        # configs/mnist_cnn.yaml, configs/cifar10_cnn.yaml
    def __init__(self, channels, side):
        super().__init__()
        self.conv1 = xavier(nn.Conv2d(channels, 32, 3, padding=1))
        self.conv2, self.conv3 = xavier(nn.Conv2d(32, 64, 3, padding=1)), xavier(nn.Conv2d(64, 64, 3, padding=1))
        self.fc1, self.out = xavier(nn.Linear(64 * (side // 4) ** 2, 512)), xavier(nn.Linear(512, 10))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2, ceil_mode=True)
        x = F.max_pool2d(F.relu(self.conv3(F.relu(self.conv2(x)))), 2, 2, ceil_mode=True)
        return self.out(F.dropout(F.relu(self.fc1(x.flatten(1))), 0.5, self.training))


class Quick(nn.Module):                      # configs/cifar10_quick.yaml
    def __init__(self):
        super().__init__()
        self.conv1 = xavier(nn.Conv2d(3, 32, 5, padding=2), 1e-4)
        self.conv2, self.conv3 = xavier(nn.Conv2d(32, 32, 5, padding=2), 0.01), xavier(nn.Conv2d(32, 64, 5, padding=2), 0.01)
        self.ip1, self.ip2 = xavier(nn.Linear(64 * 4 * 4, 64), 0.1), xavier(nn.Linear(64, 10), 0.1)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.conv1(x), 3, 2, ceil_mode=True))
        x = F.avg_pool2d(F.relu(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.avg_pool2d(F.relu(self.conv3(x)), 3, 2, ceil_mode=True)
        return self.ip2(self.ip1(x.flatten(1)))


class CharLSTM(nn.Module):                   # configs/char_lstm.yaml
    def __init__(self, vocab=65, hidden=128, layers=2):
        super().__init__()
        self.vocab = vocab
        self.lstm = nn.LSTM(vocab, hidden, layers)              # time-major T×N×D, as netspec
        self.fc = nn.Linear(hidden, vocab)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-0.08, 0.08) if p.dim() > 1 else p.zero_()
        self.state = None

    def forward(self, codes):                                   # codes: T×N (int64)
        x = F.one_hot(codes, self.vocab).float()
        y, state = self.lstm(x, self.state)
        self.state = tuple(s.detach() for s in state)           # carried, truncated BPTT
        return self.fc(y)


def groups(model, bias_lr=1.0, bias_decay=1.0, lr=1.0, decay=0.0, no_decay=()):
    """Parameter groups with Caffe's multipliers: bias lr × bias_lr; decay × 0 for biases (bias_decay 0) and
    for the layers named in ``no_decay``."""
    out = []
    for name, p in model.named_parameters():
        layer, kind = name.rsplit(".", 1)
        d = decay * (bias_decay if kind == "bias" else 1.0) * (0.0 if layer in no_decay else 1.0)
        out.append({"params": [p], "lr": lr * (bias_lr if kind == "bias" else 1.0), "weight_decay": d})
    return out


def make(net: str):
    """(model, optimizer, input shape of one row, batch) of the twin of configs/<net>.yaml."""
    torch.manual_seed(0)
    if net == "mnist_lenet":
        m = LeNet()
        return m, torch.optim.SGD(groups(m, 2.0, 1.0, 0.01, 5e-4), lr=0.01, momentum=0.9), (1, 28, 28), 64
    if net == "mnist_mlp_adadelta":
        m = MLP()
        return m, torch.optim.Adadelta(m.parameters(), lr=0.1, rho=0.95, eps=1e-5), (1, 28, 28), 100
    if net == "mnist_dropout_fc":
        m = DropoutFC()
        return m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.5), (1, 28, 28), 100
    if net in ("mnist_cnn", "cifar10_cnn"):
        mnist = net == "mnist_cnn"
        m = CNN(1 if mnist else 3, 28 if mnist else 32)
        opt = torch.optim.Adam(groups(m, 1.0, 0.0, 0.001, 0.001, no_decay=("out",)), lr=0.001)
        return m, opt, (1, 28, 28) if mnist else (3, 32, 32), 64 if mnist else 96
    if net == "cifar10_quick":
        m = Quick()
        return m, torch.optim.SGD(groups(m, 2.0, 1.0, 0.001, 0.004), lr=0.001, momentum=0.9), (3, 32, 32), 100
    if net.startswith("char_lstm"):
        hidden = 512 if net.endswith("512") else 128
        m = CharLSTM(hidden=hidden)
        return m, torch.optim.RMSprop(m.parameters(), lr=0.002, alpha=0.95, eps=1e-8), (50,), 50
    raise KeyError(net)
