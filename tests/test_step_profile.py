"""tools/step_profile.py: the split of a training step by op covers the step's forward and
backward, for both systems. No timing is asserted beyond that bookkeeping."""
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
    # tinybert's ops are timed back to back, so they account for its forward and backward
    accounted = sum(tiny[key] for key in OPS)
    assert abs(accounted - (tiny["forward"] + tiny["backward"])) < 0.1 * (tiny["forward"] + tiny["backward"])
    # and the closures, not the loop that calls them, do the backward's work
    assert tiny["engine"] < 0.5 * tiny["backward"]
    assert result["tinybert_matmul_share_of_pytorch_step_T8"] > 0
