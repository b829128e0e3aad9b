"""The map from Sandberg's Keras layer names to InceptionResnetV1's parameters."""

from facequant.models.weights import layer_map


def test_layer_map_names_sandbergs_layers():
    basic, residual = layer_map()
    assert basic["repeat_1.0.branch2.2"] == "Block35_1_Branch_2_Conv2d_0c_3x3"
    assert basic["mixed_6a.branch1.2"] == "Mixed_6a_Branch_1_Conv2d_1a_3x3"
    assert basic["block8.branch1.2"] == "Block8_6_Branch_1_Conv2d_0c_3x1"
    assert residual["repeat_2.9.conv2d"] == "Block17_10_Conv2d_1x1"
    assert len(basic) == 6 + 4 + 7 + 5 * 6 + 10 * 4 + 6 * 4 and len(residual) == 21
