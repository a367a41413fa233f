"""One stage protocol: a stage declares its sections, resources, kind and whether it holds a model; the curate
config and the pipeline follow from the stage list. The stage built here is the worked example of
docs/design.md §7, so the documentation stays true."""

from __future__ import annotations

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from ophora.curation.config import CurateConfig, config_model
from ophora.curation.stages import STAGES
from ophora.curation.stages.base import RunFacts, Stage, stage_resources
from ophora.curation.stages.common import Reject, RowStage, new_row, read_meta, rows_to_batch, update_meta


class WordCountConfig(BaseModel):
    """The ``wordcount`` section: windows whose narration is too short are dropped."""

    model_config = ConfigDict(extra="forbid")
    min_words: int = Field(4, ge=0, description="drop a window whose scrubbed narration has fewer words")


class WordCount(RowStage):
    name = "wordcount"
    sections = {"wordcount": WordCountConfig}
    resources = stage_resources(0.1, (1, 1), 64)
    holds_model = False
    optional = True

    def process(self, row):
        words = len(read_meta(row).get("narration", "").split())
        if words < self.cfg.min_words:
            raise Reject(f"narration of {words} words")


def _with_wordcount():
    names = [s.name for s in STAGES]
    return [*STAGES[: names.index("windows") + 1], WordCount, *STAGES[names.index("windows") + 1 :]]


def test_every_stage_declares_the_protocol_and_owns_distinct_sections():
    seen: set[str] = set()
    for stage in STAGES:
        assert issubclass(stage, Stage) and stage.name in stage.sections, stage
        assert stage.kind in ("map", "flat_map", "barrier") and stage.level in ("source", "window")
        assert not seen & set(stage.sections), f"{stage.name} claims a section another stage owns"
        seen |= set(stage.sections)
        assert set(stage.reads) <= {n for s in STAGES for n in s.sections}, f"{stage.name} reads an unknown section"
    assert [s.name for s in STAGES][-1] == "write"
    assert set(CurateConfig.model_fields) >= seen | {"resources", "skip", "models"}


def test_a_new_stage_is_one_class_and_one_line_in_the_stage_list():
    model = config_model(_with_wordcount())
    cfg = model.model_validate({"wordcount": {"min_words": 6}, "skip": ["privacy"]})
    assert cfg.wordcount.min_words == 6 and cfg.resources.wordcount.batch_size == 64
    assert model.model_fields["wordcount"].description.startswith("The ``wordcount`` section")
    printed = yaml.safe_load(cfg.to_yaml())
    assert printed["wordcount"] == {"min_words": 6} and "wordcount" in printed["resources"]
    assert model.model_validate({"skip": ["wordcount"]}).run_facts().runs("wordcount") is False
    with pytest.raises(ValueError):  # the plain config has no such stage: neither a section nor a skip entry
        CurateConfig.model_validate({"skip": ["wordcount"]})

    stage = WordCount(cfg, cfg.run_facts("out"))
    short, long = (new_row(source_uri="a.mp4", window_index=i, start=0.0, end=6.0) for i in (0, 1))
    update_meta(short, narration="cut here")
    update_meta(long, narration="now I cut the capsule with the cystotome")
    rows = stage(rows_to_batch([short, long])).to_pylist()
    assert rows[0]["drop"] == "wordcount: narration of 2 words" and rows[1]["drop"] == ""


def test_a_stage_is_given_its_section_or_the_whole_config_and_the_run_facts_explicitly():
    whole = CurateConfig.load("offline", overrides={"clip.crf": 23, "windows.fps": 4, "cache_dir": "/tmp/x"})
    clip_stage = next(s for s in STAGES if s.name == "clip")
    built = clip_stage(whole, whole.run_facts("out"))
    assert built.cfg.crf == 23 and built.conf["windows"].fps == 4 and built.run.cache_dir == "/tmp/x"
    alone = clip_stage(whole.clip)  # its own section alone: the sections it reads take their defaults
    assert alone.cfg.crf == 23 and alone.conf["windows"].fps == 8 and alone.run == RunFacts()
    write = next(s for s in STAGES if s.name == "write")
    with pytest.raises(ValueError, match="OUT"):
        write(whole)


def test_rows_are_checked_where_a_stage_emits_them():
    row = new_row(source_uri="a.mp4", window_index=0)
    with pytest.raises(KeyError, match="instrction"):
        update_meta(row, instrction="Cut.")  # a misspelt metadata field fails in the stage that wrote it
    row["naration"] = "x"
    with pytest.raises(KeyError, match="naration"):
        rows_to_batch([row])


def test_the_models_map_and_a_section_model_never_disagree_silently():
    with pytest.raises(ValueError, match="disagree"):
        CurateConfig.load("offline", overrides={"transcribe.model": "small"})
    same = CurateConfig.load("offline", overrides={"models.transcribe": "small", "transcribe.model": "small"})
    assert same.run_facts().models["transcribe"] == "small"
