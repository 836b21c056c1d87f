"""The token view: projections equal those read off the plain model's hidden states; the HTML holds
every layer and a slider; bad input is refused."""

import pytest
import torch

from workbench import WorkbenchError
from workbench.tokens import TokenProjections, token_projections


def test_projections_equal_the_plain_models_hidden_states(tiny, tiny_vector):
    view = token_projections(tiny, tiny_vector, "Describe the tides.", reply="They rise and fall.")
    ids = tiny.encode(tiny.chat("Describe the tides.")) + tiny.encode("They rise and fall.")
    with torch.no_grad():
        hidden = tiny.hf(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    u = tiny_vector.directions
    for layer in range(tiny.n_layers - 1):  # HF's last hidden state is after the final norm
        torch.testing.assert_close(view.values[:, layer], hidden[layer + 1][0] @ u[layer], rtol=1e-4, atol=1e-4)
    assert len(view.tokens) == len(ids) and view.n_prompt == len(tiny.encode(tiny.chat("Describe the tides.")))


def test_shades_are_zero_at_the_without_mean_and_one_at_the_with_mean():
    center, unit = torch.tensor([1.0, -2.0]), torch.tensor([2.0, 4.0])
    values = torch.stack([center, center + unit, center - unit])
    view = TokenProjections("x", ["a", "b", "c"], 1, values, center, unit, 1)
    assert view.scaled(0).tolist() == [0.0, 1.0, -1.0] and view.scaled(1).tolist() == [0.0, 1.0, -1.0]


def test_html_has_every_layer_a_slider_and_escaped_text(tiny, tiny_vector):
    view = token_projections(tiny, tiny_vector, "Use <b>bold</b> & more.", layer=2)
    page = view._repr_html_()
    assert page.count("data-layer=") == tiny.n_layers and "type='range'" in page and "value='2'" in page
    assert "<b>bold" not in page and ">&lt;</span>" in page  # each token escaped
    assert "showing layer 2" in repr(view) and view.heatmap().data[0].z is not None


def test_bad_layer_refused(tiny, tiny_vector):
    with pytest.raises(WorkbenchError, match="out of range"):
        token_projections(tiny, tiny_vector, "Hi.", layer=99)
