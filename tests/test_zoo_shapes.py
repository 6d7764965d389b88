"""The zoo's flattened feature sizes, worked out from the layers' shape rules, against a real forward."""

import pytest
import torch

from xbarsim.models import zoo


@pytest.mark.parametrize("image_size", [8, 16, 28, 32])
@pytest.mark.parametrize("build", [lambda s: zoo.LeNet5(3, 10, s), lambda s: zoo.VGG11(1, 10, s, width=0.125)])
def test_flat_features_equal_a_forward(build, image_size):
    net = build(image_size).eval()
    with torch.no_grad():
        out = net.features(torch.zeros(1, net.features[0].in_channels, image_size, image_size))
    assert zoo._flat_features(net.features, net.features[0].in_channels, image_size) == out[0].numel()


def test_flat_features_refuse_a_layer_without_a_rule():
    with pytest.raises(TypeError, match="AvgPool2d"):
        zoo._flat_features(torch.nn.Sequential(torch.nn.AvgPool2d(2)), 3, 8)
