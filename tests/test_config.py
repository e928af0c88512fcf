from __future__ import annotations

import copy

import pytest

from jepa_pipe.config import ConfigError, load_config, validate_config

from conftest import REPO

RECIPES = sorted((REPO / "config").glob("*.yaml"))


def demo_config():
    return load_config(REPO / "config/config.yaml")


def test_demo_config_is_valid_as_shipped(tmp_path):
    cfg = validate_config(demo_config(), base_dir=tmp_path)  # demo roots are generated
    assert cfg["paths"]["manifests"] == "manifests"
    assert set(cfg["datasets"]) == {"ssv2", "ucf101", "msrvtt", "msvd", "charades_sta", "coco"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_is_valid_apart_from_its_data_roots(recipe):
    validate_config(load_config(recipe), check_paths=False)


def test_five_seed_systems_have_recipes():
    systems = set()
    for recipe in RECIPES:
        for exp in load_config(recipe).get("experiments", {}).values():
            systems.add(exp["system"])
    assert systems == {"st_jepa", "vjepa", "vjepa2", "vljepa_video", "vljepa_image"}


def test_recipe_teachers_use_real_model_ids():
    teachers = load_config(REPO / "config/st_jepa.yaml")["teachers"]
    assert teachers["videomae_h"]["weights"] == "MCG-NJU/videomae-huge-finetuned-kinetics"
    assert teachers["videomae_h"]["projection"]["dim"] == 384


def mutate(fn):
    cfg = copy.deepcopy(demo_config())
    fn(cfg)
    return cfg


@pytest.mark.parametrize(
    "change,message",
    [
        (
            lambda c: c["datasets"]["ucf101"].update(rooot="x"),
            r"datasets\.ucf101\.rooot: unknown key; expected one of: decode, root, splits",
        ),
        (
            lambda c: c.update(extra=1),
            r"extra: unknown key; expected one of: cache, datasets, demo",
        ),
        (
            lambda c: c["datasets"].update(kinetics={"root": "x", "splits": ["train"]}),
            r"datasets\.kinetics: unknown key; expected one of: ssv2, ucf101",
        ),
        (
            lambda c: c["datasets"]["ucf101"].update(splits="train"),
            r"datasets\.ucf101\.splits: expected list, got string 'train'",
        ),
        (
            lambda c: c["demo"].update(seed="zero"),
            r"demo\.seed: expected integer, got string 'zero'",
        ),
        (
            lambda c: c["datasets"]["ucf101"].pop("root"),
            r"datasets\.ucf101\.root: missing required key",
        ),
        (
            lambda c: c.update(teachers={"t": {"kind": "videomae-h", "weights": "x"}}),
            r"teachers\.t\.kind: unknown teacher kind 'videomae-h'; expected one of: videomae, vjepa2",
        ),
        (
            lambda c: c["datasets"]["ucf101"].update(teachers=["nope"]),
            r"datasets\.ucf101\.teachers\[0\]: unknown teacher 'nope'; defined teachers: videomae_tiny, ",
        ),
        (
            lambda c: c["datasets"]["ucf101"].update(splits=["train", "val"]),
            r"datasets\.ucf101\.splits\[1\]: unknown split 'val'; expected one of: train",
        ),
        (
            lambda c: c["datasets"]["coco"].update(root="/definitely/not/here"),
            r"datasets\.coco\.root: data root '/definitely/not/here' does not exist",
        ),
    ],
)
def test_bad_config_names_the_key_and_what_was_expected(change, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        validate_config(mutate(change), base_dir=tmp_path)


def test_experiment_must_name_configured_dataset_and_teacher():
    cfg = load_config(REPO / "config/vjepa.yaml")
    cfg["experiments"]["vjepa"].update(dataset="msvd", teacher="vjepa2_l")
    with pytest.raises(ConfigError) as e:
        validate_config(cfg, check_paths=False)
    assert "experiments.vjepa.dataset: unknown dataset 'msvd'" in str(e.value)
    assert "experiments.vjepa.teacher: unknown teacher 'vjepa2_l'" in str(e.value)


def test_load_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
