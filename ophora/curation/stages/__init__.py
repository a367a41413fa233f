"""The curation stages, one file (or package) each, in flow order: :data:`STAGES` is the one list the pipeline's
Ray Data graph and the curate config (:mod:`ophora.curation.config`) are built from. The protocol every stage
follows is in :mod:`ophora.curation.stages.base`."""

from ophora.curation.stages.clip import Clip
from ophora.curation.stages.dedup import DedupStage
from ophora.curation.stages.dynamics import DynamicsStage
from ophora.curation.stages.privacy import PrivacyStage
from ophora.curation.stages.probe import Probe
from ophora.curation.stages.quality import QualityStage
from ophora.curation.stages.refine import RefineStage
from ophora.curation.stages.scenes import Scenes
from ophora.curation.stages.transcribe import TranscribeStage
from ophora.curation.stages.windows import Windows
from ophora.curation.stages.write import Write

# Flow order. The visual filters run before refine so that a window they drop costs no LLM call; dedup runs after
# refine so that the window it keeps from a group of near duplicates is one every other stage accepted; write last.
STAGES = [
    Probe,
    TranscribeStage,
    Scenes,
    Windows,
    DynamicsStage,
    QualityStage,
    PrivacyStage,
    RefineStage,
    DedupStage,
    Clip,
    Write,
]
