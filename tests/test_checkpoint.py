"""The contact model's checkpoint shell: restore on start, periodic saves, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.checkpoint import DAY_S, CheckpointError, Checkpoints, restore
from optimizer.model import ContactModel
from tests.test_model import DAY0, SHAPE, make_batch


def fitted(seed: int = 1, now: float = DAY0 + 100.0) -> ContactModel:
    model = ContactModel(SHAPE, half_life_s=600.0, prior_strength=5.0)
    model.partial_fit(make_batch(np.random.default_rng(seed), 500, t0=DAY0, t1=now), now)
    return model


def test_no_file_is_a_first_start(tmp_path):
    assert restore(tmp_path / "model.npz", SHAPE, DAY0) is None


def test_a_saved_model_comes_back_with_the_same_estimates(tmp_path):
    model = fitted()
    Checkpoints(tmp_path / "model.npz").save(model, 100.0)
    back = restore(tmp_path / "model.npz", SHAPE, DAY0 + 3600.0)
    ids = np.arange(model.n_segments)
    np.testing.assert_array_equal(back.predict(ids, DAY0 + 3600.0)[1],
                                  model.predict(ids, DAY0 + 3600.0)[1])
    assert back.n_seen_ == model.n_seen_ == 500


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_an_unreadable_file_is_an_error_that_names_it(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"^{path}: "):
        restore(path, SHAPE, DAY0)


def test_a_checkpoint_of_another_shape_is_refused(tmp_path):
    fitted().save(tmp_path / "model.npz")
    other = (4, *SHAPE[1:])
    with pytest.raises(CheckpointError, match=r"segment shape \(3, 2, 2, 2, 3, 2\) does not "
                                              r"match this campaign's \(4, 2, 2, 2, 3, 2\)"):
        restore(tmp_path / "model.npz", other, DAY0 + 200.0)


def test_a_checkpoint_from_after_the_start_is_refused_or_redated_by_whole_days(tmp_path):
    model = fitted(now=DAY0 + 100.0)
    model.save(tmp_path / "model.npz")
    start = DAY0 + 50.0  # the same day, earlier: as when a simulated day runs again
    with pytest.raises(CheckpointError, match="after this run starts"):
        restore(tmp_path / "model.npz", SHAPE, start)
    back = restore(tmp_path / "model.npz", SHAPE, start, redate=True)
    assert back.now_s_ == DAY0 + 100.0 - DAY_S
    # every count keeps its age: the same estimates, a day earlier
    ids = np.arange(model.n_segments)
    np.testing.assert_allclose(back.predict(ids, DAY0 + 100.0 - DAY_S)[1],
                               model.predict(ids, DAY0 + 100.0)[1], rtol=1e-12)


def test_saves_come_every_few_minutes_and_a_failed_one_is_counted_not_raised(tmp_path, caplog):
    ck = Checkpoints(tmp_path / "model.npz", every_s=300.0)
    model = fitted()
    assert [ck.maybe_save(model, t) for t in (0.0, 60.0, 299.0, 300.0, 400.0)] == \
        [True, False, False, True, False]
    assert ck.n_saved == 2 and (tmp_path / "model.npz").exists()
    broken = Checkpoints(tmp_path / "no-such-dir" / "model.npz")
    assert broken.maybe_save(model, 0.0) is False
    assert broken.n_failed == 1 and "checkpoint not saved" in caplog.text
    assert broken.maybe_save(model, 1.0) is False  # retried at the next call
    assert broken.n_failed == 2
