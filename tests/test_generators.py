"""Generators: the shipped weights load, check their sha256, decode in batches; training round-trips."""

import shutil

import numpy as np
import pytest
import torch

from designgym import generators
from designgym.generators import ConvVAE, GeneratorIntegrityError
from designgym.generators.training import VAETrainingConfig, save_generator, train_vae

NAME = "extrusion-vae-32"


@pytest.fixture(scope="module")
def shipped():
    return generators.load(NAME, device="cpu")


def test_shipped_generator_is_listed_with_a_model_card():
    assert NAME in generators.available()
    card = generators.card(NAME)
    assert card["latent_dim"] == 8 and card["design_shape"] == [32, 32]
    assert card["script"] == "scripts/train_generator.py"
    assert 0.0 <= card["metrics"]["valid_rate"] <= 1.0
    weights = generators.registry.WEIGHTS_DIR / f"{NAME}.pt"
    assert weights.stat().st_size < 5_000_000  # ships inside the package


def test_decode_is_batched_and_in_the_unit_interval(shipped):
    z = torch.randn(5, shipped.latent_dim, generator=torch.Generator().manual_seed(0))
    designs = shipped.decode(z)
    assert designs.shape == (5, 32, 32) and designs.device.type == "cpu"
    assert float(designs.min()) >= 0.0 and float(designs.max()) <= 1.0
    one_by_one = torch.cat([shipped.decode(z[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(designs, one_by_one, rtol=1e-5, atol=1e-5)
    assert shipped.decode_numpy(z.numpy()).dtype == np.float32


def test_prior_samples_behave_as_the_model_card_says(shipped):
    from designgym.envs.manufacturing import disconnected_fraction, solid_mask

    metrics = generators.card(NAME)["metrics"]
    masks = solid_mask(shipped.decode_numpy(np.random.default_rng(0).standard_normal((256, 8))))
    fill = masks.mean(axis=(1, 2))
    one_piece = np.mean([disconnected_fraction(m) == 0 for m in masks])
    # Different draws than the card's, so allow sampling error (about 3 standard errors at n = 256).
    assert abs(fill.mean() - metrics["mean_area_fraction"]) < 0.03
    assert abs(one_piece - metrics["one_piece_rate"]) < 0.1
    assert fill.std() > 0.05  # varied, not one blob


@pytest.mark.parametrize("z", [np.zeros(8), np.zeros((2, 7)), np.zeros((1, 2, 8))])
def test_wrong_latent_shape_is_named(shipped, z):
    with pytest.raises(ValueError, match=r"latents of shape \(batch, 8\)"):
        shipped.decode(z)


def test_device_is_chosen_automatically_and_can_be_overridden():
    auto = generators.load(NAME)
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert generators.load(NAME, device="cpu").device.type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            generators.load(NAME, device="cuda")
    with pytest.raises(ValueError, match="unknown device"):
        generators.resolve_device("tpu-please")


def test_tampered_weights_are_refused_with_the_fix(tmp_path):
    src = generators.registry.WEIGHTS_DIR
    for suffix in (".pt", ".json"):
        shutil.copy(src / f"{NAME}{suffix}", tmp_path / f"{NAME}{suffix}")
    assert generators.load(NAME, device="cpu", directory=tmp_path).latent_dim == 8
    data = bytearray((tmp_path / f"{NAME}.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / f"{NAME}.pt").write_bytes(bytes(data))
    with pytest.raises(GeneratorIntegrityError, match="sha256.*reinstall designgym.*train_generator.py"):
        generators.load(NAME, device="cpu", directory=tmp_path)


def test_unknown_generator_is_named():
    with pytest.raises(KeyError, match="no generator named 'nope'.*extrusion-vae-32"):
        generators.load("nope")


def test_training_and_saving_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    designs = np.zeros((64, 16, 16), np.float32)
    for d in designs:
        r, c = rng.integers(0, 8, size=2)
        d[r : r + 8, c : c + 8] = 1
    model, history = train_vae(designs, VAETrainingConfig(latent_dim=4, channels=8, epochs=2, batch_size=32),
                               progress=False)
    assert len(history) == 2 and all(np.isfinite(h["reconstruction"]) for h in history)
    save_generator(model, "tiny", {"note": "test"}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.pt"]  # no temp files left
    loaded = generators.load("tiny", device="cpu", directory=tmp_path)
    assert isinstance(loaded, ConvVAE) and loaded.design_shape == (16, 16)
    z = torch.randn(3, 4)
    torch.testing.assert_close(loaded.decode(z), model.decode(z))


def test_the_same_latent_always_gives_the_same_design():
    # On CUDA this holds only with cuDNN's deterministic kernels, which decode asks for.
    generator = generators.load(NAME)
    z = np.random.default_rng(3).standard_normal((4, 8))
    first = generator.decode_numpy(z)
    assert all(np.array_equal(first, generator.decode_numpy(z)) for _ in range(5))


@pytest.mark.parametrize("shape", [(32, 64), (20, 60), (9, 13)])
def test_conv_vae_takes_any_grid_of_at_least_8_cells(shape):
    model = ConvVAE(latent_dim=3, channels=4, shape=shape).eval()
    x = torch.rand(2, *shape)
    logits, mu, logvar = model(x)
    assert logits.shape == (2, *shape) and mu.shape == logvar.shape == (2, 3)
    assert model.decode(torch.zeros(1, 3)).shape == (1, *shape)
    assert model.config["shape"] == list(shape)
    with pytest.raises(ValueError, match="at least 8 x 8"):
        ConvVAE(shape=(7, 32))


def test_square_spelling_keeps_the_shipped_layout():
    # The extrusion card says {"size": 32}: the same modules must come out, or its weights would not load.
    assert ConvVAE(8, 32, 32).config == {"latent_dim": 8, "size": 32, "channels": 32}
    assert ConvVAE(8, shape=(32, 32)).state_dict().keys() == ConvVAE(8, 32).state_dict().keys()


def test_training_rejects_values_outside_the_unit_interval():
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        train_vae(np.full((4, 8, 8), 2.0, np.float32), VAETrainingConfig(epochs=1), progress=False)


def test_model_card_page_matches_the_shipped_cards():
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "model_cards.py"
    spec = importlib.util.spec_from_file_location("model_cards", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.DOC.read_text() == module.render(), "docs/model-cards.md is stale: run scripts/model_cards.py"


# -- conditional generators, label grids and fields ------------------------------------------------


def _conditional(classes=1, scale=1.0, conditions_dim=3):
    torch.manual_seed(0)
    return ConvVAE(4, 32, 8, conditions_dim=conditions_dim, classes=classes, scale=scale).eval()


def test_a_conditional_generator_needs_one_conditions_row_per_latent():
    model = _conditional()
    z = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"conditional: pass conditions of shape \(batch, 3\)"):
        model.decode(z)
    with pytest.raises(ValueError, match=r"conditions of shape \(2, 3\), one row per latent; got \(1, 3\)"):
        model.decode(z, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.decode(z, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="unconditional"):
        generators.load(NAME, device="cpu").decode(np.zeros((2, 8)), np.zeros((2, 3)))
    # The conditions steer the design: one latent, two briefs, two designs.
    designs = model.decode_numpy(z, np.array([[-1, -1, -1], [1, 1, 1]], np.float32))
    assert not np.allclose(designs[0], designs[1])


def test_label_and_field_generators_decode_codes_and_scaled_values():
    labels = _conditional(classes=6).decode_numpy(np.random.default_rng(0).standard_normal((3, 4)), np.zeros((3, 3)))
    assert set(np.unique(labels)) <= set(range(6)) and labels.dtype == np.float32
    field = _conditional(scale=60.0).decode_numpy(np.zeros((2, 4)), np.zeros((2, 3)))
    assert field.min() >= 0 and field.max() <= 60 and field.max() > 1  # metres, not the unit interval
    storeys = _conditional(classes=18, scale=3.5).decode_numpy(np.zeros((2, 4)), np.zeros((2, 3)))
    np.testing.assert_allclose(storeys / 3.5, np.round(storeys / 3.5), atol=1e-6)  # whole storeys of 3.5 m
    with pytest.raises(ValueError, match="scale > 0"):
        ConvVAE(4, 32, 8, classes=6, scale=0.0)


@pytest.mark.parametrize("coord_head", [False, True])
def test_conditional_label_vae_learns_a_code_grid_that_depends_on_its_conditions(coord_head):
    # Two briefs, each with its own plan: after training, the prior mean decodes each brief's plan.
    plan_a = np.zeros((16, 16), np.float32)
    plan_a[:, 8:] = 2
    plan_b = np.zeros((16, 16), np.float32)
    plan_b[8:, :] = 1
    designs = np.stack([plan_a, plan_b] * 64)
    conditions = np.array([[-1.0], [1.0]] * 64, np.float32)
    config = VAETrainingConfig(latent_dim=2, channels=8, epochs=30, batch_size=32, lr=5e-3, classes=3, device="cpu",
                               coord_head=coord_head)
    model, history = train_vae(designs, config, progress=False, conditions=conditions)
    assert history[-1]["reconstruction"] < history[0]["reconstruction"] / 10
    decoded = model.decode_numpy(np.zeros((2, 2)), np.array([[-1.0], [1.0]]))
    assert np.mean(decoded[0] == plan_a) > 0.95 and np.mean(decoded[1] == plan_b) > 0.95
    with pytest.raises(ValueError, match="whole class codes"):
        train_vae(designs * 0.5, config, progress=False, conditions=conditions)
    with pytest.raises(ValueError, match="one row per design"):
        train_vae(designs, config, progress=False, conditions=conditions[:3])


def test_env_decodes_a_conditional_generator_with_the_episode_conditions():
    from designgym.envs import LatentDesignEnv
    from designgym.envs.vector import BatchedDesignVecEnv

    model = _conditional()
    env = LatentDesignEnv("extrusion", model)
    z = np.full(4, 0.3, np.float32)
    designs = []
    for fraction in (0.2, 0.4):
        env.reset(options={"conditions": {"area_fraction": fraction, "axis_angle": 0, "max_hollows": 0}})
        env.step(z / env.latent_bound)
        vector = env.problem.conditions_vector(env.conditions)
        np.testing.assert_array_equal(env.design, model.decode_numpy(z[None], vector[None])[0])
        designs.append(env.design)
    # Same latent, other brief: another design, and not one served from the cache of the first.
    assert not np.array_equal(designs[0], designs[1])

    vec = BatchedDesignVecEnv([LatentDesignEnv("extrusion", model) for _ in range(3)])
    vec.seed(5)
    vec.reset()
    _, _, _, infos = vec.step(np.full((3, 4), 0.1, np.float32))
    assert len({tuple(single.problem.conditions_vector(single.final_conditions)) for single in vec.envs}) == 3
    for single, info in zip(vec.envs, infos, strict=True):  # decoded in one batch of three: equal up to
        vector = single.problem.conditions_vector(single.final_conditions)  # float summation order
        latent = info["latent"] * single.latent_bound
        np.testing.assert_allclose(single.final_design, model.decode_numpy(latent[None], vector[None])[0], atol=1e-6)
    vec.close()

    with pytest.raises(ValueError, match="conditioned on 5 condition values.*problem extrusion has 3"):
        LatentDesignEnv("extrusion", _conditional(conditions_dim=5))

