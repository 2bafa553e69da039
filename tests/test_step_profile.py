"""tools/step_profile.py: the split of a training step by op covers the step's forward and
backward, for both systems. No timing is asserted: how much of the step the ops account
for, and the engine's share of the backward, are in the profile's output."""
import json

from tools import step_profile

OPS = step_profile.CATEGORIES + ("engine", "other")


def test_the_ops_of_a_step_add_up_to_its_forward_and_backward(capsys):
    step_profile.main(["--lengths", "8", "--steps", "1", "--json"])
    result = json.loads(capsys.readouterr().out)
    tiny, torch = result["tinybert_T8"], result["pytorch_T8"]
    for times in (tiny, torch):
        assert all(times[key] >= 0 for key in OPS if key != "other")
        assert times["matmul"] > 0 and times["step"] > 0
    assert tiny["forward"] > 0 and tiny["backward"] > 0
    assert result["tinybert_matmul_share_of_pytorch_step_T8"] > 0
