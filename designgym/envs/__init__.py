"""Design environments: the env, the problem API, registration, and the built-in families."""

from designgym.envs.architecture.floorplan import FloorPlan
from designgym.envs.architecture.massing import Massing
from designgym.envs.catalogue import UnknownNameError, register_problem
from designgym.envs.extrusion.problem import Extrusion
from designgym.envs.latent_env import LatentDesignEnv
from designgym.envs.problem import Evaluation, NoReferenceOptimizer, ObjectiveSpec, Problem
from designgym.envs.registration import (
    env_reference,
    env_specs,
    list_envs,
    load_plugins,
    make,
    make_problem,
    register_design_env,
    resolve_env_id,
    retire_env,
)
from designgym.envs.structures.problems import MBB, AMBracket, Cantilever

__all__ = [
    "MBB",
    "AMBracket",
    "Cantilever",
    "Evaluation",
    "Extrusion",
    "FloorPlan",
    "LatentDesignEnv",
    "Massing",
    "NoReferenceOptimizer",
    "ObjectiveSpec",
    "Problem",
    "UnknownNameError",
    "env_reference",
    "env_specs",
    "list_envs",
    "load_plugins",
    "make",
    "make_problem",
    "register_design_env",
    "register_problem",
    "resolve_env_id",
    "retire_env",
]


#: What the direct-mode envs' newest versions changed (the designs are the same).
ONE_EVALUATION = ("rewards a one-step design by its own objective and penalties instead of by its gain over the "
                  "zero-latent start design, and its first observation carries no start-design features, so an "
                  "episode costs one decode and one evaluation")


def _register_builtin() -> None:
    register_problem("extrusion", Extrusion)
    register_problem("cantilever", Cantilever)
    register_problem("mbb", MBB)
    register_problem("am_bracket", AMBracket)
    register_problem("floor_plan", FloorPlan)
    register_problem("massing", Massing)
    # v1: each decoded section is repaired to the target area in one piece with walls of 2 cells
    # (v0 judged the raw decoding, whose best sections lay on the edge of the legal region: a latent
    # 0.01 away broke a rule half of the time, so no one-shot designer could keep to them).
    register_design_env(
        "designgym/Extrusion-v2",
        problem="extrusion",
        generator="extrusion-vae-32",
        description="Stiffest extrudable profile section for its material; one-shot latent choice, repaired.",
        source="designgym",
        action_mode="direct",
        repair=True,
    )
    register_design_env(
        "designgym/ExtrusionSteps-v1",
        problem="extrusion",
        generator="extrusion-vae-32",
        description="Extrusion section refined by 8 bounded latent steps from a random start, repaired.",
        source="designgym",
        action_mode="delta",
        episode_length=8,
        initial_latent="random",
        repair=True,
    )
    repaired = ("repairs every decoded section to the target area, in one piece, with walls of at least 2 cells, "
                "so the designs, rewards and observations differ")
    retire_env("designgym/Extrusion-v0", "designgym/Extrusion-v2", f"v1 {repaired}; v2 {ONE_EVALUATION}")
    retire_env("designgym/Extrusion-v1", "designgym/Extrusion-v2", f"v2 {ONE_EVALUATION}")
    retire_env("designgym/ExtrusionSteps-v0", "designgym/ExtrusionSteps-v1", f"v1 {repaired}")
    # The cantilever envs decode with the load case and keep the densest cells at the volume budget
    # that are joined to the clamp (repair): volume and floating material are met by construction,
    # and the agent's whole task is stiffness (and, for the bracket, printability).
    register_design_env(
        "designgym/Cantilever-v1",
        problem="cantilever",
        generator="cantilever-cvae",
        description="Stiffest cantilever for its volume and load case; material joined to the clamp.",
        source="designgym",
        action_mode="direct",
        repair=True,
    )
    # v2: the build directions left and right mean what the docs say (v1 printed "left" from a plate at
    # the left edge), the repair makes every design printable along its build direction and thickens
    # thin members (AMBracket.repair), and the generator (am-bracket-cvae) was trained on printable
    # optima for each build direction. v3: where the load hangs on nothing that prints, the repair joins
    # it with a strut that prints on its own (printing.printable_bridge), so every repaired design
    # carries its load.
    register_design_env(
        "designgym/AMBracket-v3",
        problem="am_bracket",
        generator="am-bracket-cvae",
        description="Cantilever bracket printable without supports (45-degree overhang, 3-element members).",
        source="designgym",
        action_mode="direct",
        repair=True,
    )
    # v2: the latent is a structured description (strip depth, room assignment and orders, aimed
    # areas) solved into rooms by slicing the footprint (floorplan-slicing), so a design is a plan by
    # construction; v1 decoded pixels (floorplan-cvae, still shipped for comparison), which met
    # every rule for no raw sample and no agent.
    register_design_env(
        "designgym/FloorPlan-v2",
        problem="floor_plan",
        generator="floorplan-slicing",
        description="House plan for a brief: rooms, areas, doors from the entrance, daylight, adjacencies.",
        source="designgym",
        action_mode="direct",
    )
    # v2: each decoded massing is repaired (Massing.repair): capped at the zoning envelope, every
    # storey's plate opened to the minimum width, and scaled to the target floor area, so the envelope
    # and plate rules hold by construction and the agent's task is the floor area's shape, sun and shadow.
    register_design_env(
        "designgym/Massing-v2",
        problem="massing",
        generator="massing-cvae",
        description="Building mass on a parcel under setbacks, height and sky plane, at its floor area; sun vs shadow.",
        source="designgym",
        action_mode="direct",
        repair=True,
    )
    # v1: repaired like the cantilever (v0 judged raw decodings, and loose specks made one in five
    # of a one-shot designer's beams illegal).
    register_design_env(
        "designgym/MBB-v2",
        problem="mbb",
        generator="mbb-vae",
        description="Stiffest MBB half-beam for its volume and load position; material joined to the supports.",
        source="designgym",
        action_mode="direct",
        repair=True,
    )
    retire_env("designgym/MBB-v0", "designgym/MBB-v2",
               "v1 keeps the densest cells at the volume budget that are joined to the supports, so the designs, "
               f"rewards and observations differ; v2 {ONE_EVALUATION}")
    retire_env("designgym/MBB-v1", "designgym/MBB-v2", f"v2 {ONE_EVALUATION}")
    retire_env("designgym/Cantilever-v0", "designgym/Cantilever-v1", f"v1 {ONE_EVALUATION}")
    printable = ("repairs every design to print along its build direction (left and right as documented, "
                 "swapped in v1) with no thin members, from a generator of printable optima, so the designs, "
                 "rewards and observations differ")
    bridged = ("joins a load that hangs on nothing printable to the part with a strut that prints, so the "
               "designs and rewards differ")
    retire_env("designgym/AMBracket-v0", "designgym/AMBracket-v3",
               f"v1 {ONE_EVALUATION}; v2 {printable}; v3 {bridged}")
    retire_env("designgym/AMBracket-v1", "designgym/AMBracket-v3", f"v2 {printable}; v3 {bridged}")
    retire_env("designgym/AMBracket-v2", "designgym/AMBracket-v3", f"v3 {bridged}")
    capped = ("repairs every decoded massing to the zoning envelope, plates at least the minimum width and the "
              "target floor area, so the designs, rewards and observations differ")
    retire_env("designgym/Massing-v0", "designgym/Massing-v2", f"v1 {ONE_EVALUATION}; v2 {capped}")
    retire_env("designgym/Massing-v1", "designgym/Massing-v2", f"v2 {capped}")
    sliced = ("decodes its latent as a structured plan (corridor, strips of rooms, aimed areas) with the "
              "floorplan-slicing generator instead of pixels, so the actions, designs and rewards differ")
    retire_env("designgym/FloorPlan-v0", "designgym/FloorPlan-v2", f"v1 {ONE_EVALUATION}; v2 {sliced}")
    retire_env("designgym/FloorPlan-v1", "designgym/FloorPlan-v2", f"v2 {sliced}")


_register_builtin()
