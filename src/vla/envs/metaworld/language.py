"""One instruction per Meta-World task, train paraphrases for augmentation, held-out ones for a split.

Every task has a canonical instruction (what `train` episodes show), two more train phrasings and one
held-out phrasing (only the `paraphrase` split shows it). `paraphrase()` draws from the train phrasings
only, so the held-out ones are never seen in training. The phrasings are written for this project.
"""

from __future__ import annotations

import numpy as np

# task -> (canonical, train paraphrase, train paraphrase, held-out paraphrase)
PHRASES: dict[str, tuple[str, str, str, str]] = {
    "assembly-v3": (
        "put the ring onto the peg",
        "slide the round nut down over the peg",
        "assemble the nut onto the peg",
        "fit the ring over the post",
    ),
    "basketball-v3": (
        "dunk the ball into the basket",
        "put the ball through the hoop",
        "score a basket with the ball",
        "drop the ball into the hoop",
    ),
    "bin-picking-v3": (
        "move the puck from one bin to the other",
        "pick the puck out of the bin and place it in the other bin",
        "transfer the puck between the bins",
        "carry the puck over to the second bin",
    ),
    "box-close-v3": (
        "put the lid on the box",
        "close the box with its lid",
        "cover the box with the lid",
        "place the cover onto the box",
    ),
    "button-press-topdown-v3": (
        "press the button from the top",
        "push the button down from above",
        "press down on the top button",
        "hit the button straight down",
    ),
    "button-press-topdown-wall-v3": (
        "press the button behind the wall from the top",
        "push down the button behind the short wall",
        "press the walled button from above",
        "reach over the wall and press the button down",
    ),
    "button-press-v3": (
        "press the button",
        "push the button in",
        "press the button on the front",
        "poke the button",
    ),
    "button-press-wall-v3": (
        "press the button behind the wall",
        "push the button that sits behind the wall",
        "reach past the wall and press the button",
        "press the button past the small wall",
    ),
    "coffee-button-v3": (
        "press the button on the coffee machine",
        "push the coffee machine's button",
        "start the coffee machine with its button",
        "hit the coffee maker button",
    ),
    "coffee-pull-v3": (
        "pull the mug away from the coffee machine",
        "slide the cup out from the coffee machine",
        "take the mug back from the coffee machine",
        "draw the cup away from the machine",
    ),
    "coffee-push-v3": (
        "push the mug under the coffee machine",
        "slide the cup into the coffee machine",
        "move the mug to the coffee machine",
        "shove the cup under the spout",
    ),
    "dial-turn-v3": (
        "turn the dial",
        "rotate the dial",
        "spin the knob around",
        "twist the dial",
    ),
    "disassemble-v3": (
        "take the ring off the peg",
        "lift the round nut off the peg",
        "disassemble the nut from the peg",
        "remove the ring from the post",
    ),
    "door-close-v3": (
        "close the door",
        "shut the door",
        "push the door closed",
        "swing the door shut",
    ),
    "door-lock-v3": (
        "lock the door",
        "turn the door lock down",
        "lock the door with its knob",
        "secure the door lock",
    ),
    "door-open-v3": (
        "open the door",
        "pull the door open",
        "swing the door open",
        "open up the door",
    ),
    "door-unlock-v3": (
        "unlock the door",
        "turn the door lock up",
        "unlock the door with its knob",
        "release the door lock",
    ),
    "hand-insert-v3": (
        "put the puck into the hole",
        "insert the puck in the hole",
        "slide the puck into the opening",
        "drop the puck in the hole in the table",
    ),
    "drawer-close-v3": (
        "close the drawer",
        "push the drawer shut",
        "slide the drawer closed",
        "shut the drawer",
    ),
    "drawer-open-v3": (
        "open the drawer",
        "pull the drawer open",
        "slide the drawer out",
        "pull out the drawer",
    ),
    "faucet-open-v3": (
        "open the faucet",
        "turn the faucet on",
        "rotate the faucet handle to open it",
        "turn on the tap",
    ),
    "faucet-close-v3": (
        "close the faucet",
        "turn the faucet off",
        "rotate the faucet handle to close it",
        "turn off the tap",
    ),
    "hammer-v3": (
        "hammer the nail in",
        "use the hammer to drive in the nail",
        "pick up the hammer and hit the nail",
        "knock the nail in with the hammer",
    ),
    "handle-press-side-v3": (
        "press the handle down from the side",
        "push the side handle down",
        "press down the handle on the side",
        "lower the handle from its side",
    ),
    "handle-press-v3": (
        "press the handle down",
        "push the handle down",
        "press down on the handle",
        "lower the handle",
    ),
    "handle-pull-side-v3": (
        "pull the handle up from the side",
        "lift the side handle up",
        "pull up the handle on the side",
        "raise the handle from its side",
    ),
    "handle-pull-v3": (
        "pull the handle up",
        "lift the handle up",
        "pull up on the handle",
        "raise the handle",
    ),
    "lever-pull-v3": (
        "pull the lever up",
        "lift the lever",
        "raise the lever up",
        "pull up on the lever",
    ),
    "pick-place-wall-v3": (
        "pick up the puck and place it behind the wall",
        "lift the puck over the wall to the goal",
        "carry the puck past the wall and put it down",
        "move the puck over the wall to the target",
    ),
    "pick-out-of-hole-v3": (
        "pick the peg out of the hole",
        "lift the peg out of the hole",
        "pull the peg up out of the hole",
        "take the peg out of its hole",
    ),
    "pick-place-v3": (
        "pick up the puck and place it at the goal",
        "lift the puck and put it on the target",
        "move the puck to the goal through the air",
        "grab the puck and set it down at the target",
    ),
    "plate-slide-v3": (
        "slide the plate into the cabinet",
        "push the plate into the goal",
        "slide the plate forward into the slot",
        "shove the plate into the cabinet",
    ),
    "plate-slide-side-v3": (
        "slide the plate into the cabinet from the side",
        "push the plate sideways into the goal",
        "slide the plate sideways into the slot",
        "shove the plate into the cabinet sideways",
    ),
    "plate-slide-back-v3": (
        "slide the plate out of the cabinet",
        "pull the plate back out of the goal",
        "slide the plate back out of the slot",
        "draw the plate out of the cabinet",
    ),
    "plate-slide-back-side-v3": (
        "slide the plate out of the cabinet to the side",
        "pull the plate sideways out of the goal",
        "slide the plate back out sideways",
        "draw the plate out of the cabinet sideways",
    ),
    "peg-insert-side-v3": (
        "insert the peg into the hole from the side",
        "push the peg sideways into the hole",
        "slide the peg into the side hole",
        "put the peg in the hole in the side of the box",
    ),
    "peg-unplug-side-v3": (
        "unplug the peg from the side",
        "pull the peg out sideways",
        "take the peg out of the side hole",
        "remove the peg from the side of the box",
    ),
    "soccer-v3": (
        "kick the ball into the goal",
        "push the soccer ball into the net",
        "score a goal with the ball",
        "get the ball into the goal",
    ),
    "stick-push-v3": (
        "use the stick to push the thermos",
        "grab the stick and push the bottle with it",
        "push the thermos to the goal with the stick",
        "shove the bottle along using the stick",
    ),
    "stick-pull-v3": (
        "use the stick to pull the thermos",
        "grab the stick and pull the bottle with it",
        "pull the thermos to the goal with the stick",
        "drag the bottle back using the stick",
    ),
    "push-v3": (
        "push the puck to the goal",
        "slide the puck to the target",
        "push the puck along the table to the goal",
        "nudge the puck over to the target",
    ),
    "push-wall-v3": (
        "push the puck around the wall to the goal",
        "slide the puck past the wall to the target",
        "push the puck to the goal behind the wall",
        "nudge the puck around the wall",
    ),
    "push-back-v3": (
        "push the puck back to the goal",
        "slide the puck backwards to the target",
        "pull the puck back along the table to the goal",
        "move the puck back toward the target",
    ),
    "reach-v3": (
        "reach the goal",
        "move the gripper to the target",
        "reach out to the goal position",
        "bring the hand to the target point",
    ),
    "reach-wall-v3": (
        "reach the goal behind the wall",
        "move the gripper past the wall to the target",
        "reach over the wall to the goal",
        "bring the hand around the wall to the target",
    ),
    "shelf-place-v3": (
        "put the puck on the shelf",
        "place the puck onto the shelf",
        "pick up the puck and set it on the shelf",
        "move the puck up onto the shelf",
    ),
    "sweep-into-v3": (
        "sweep the puck into the hole",
        "brush the puck into the hole",
        "push the puck into the hole",
        "sweep the puck over into the opening",
    ),
    "sweep-v3": (
        "sweep the puck off the table",
        "brush the puck off the edge",
        "push the puck off the table",
        "clear the puck off the table",
    ),
    "window-open-v3": (
        "open the window",
        "slide the window open",
        "push the window open",
        "slide open the window",
    ),
    "window-close-v3": (
        "close the window",
        "slide the window shut",
        "push the window closed",
        "slide the window closed",
    ),
}

_CANONICAL = {phrases[0]: task for task, phrases in PHRASES.items()}
_TRAIN = {p: phrases[:3] for phrases in PHRASES.values() for p in phrases[:3]}


def instruction(task: str, *, held_out: bool = False) -> str:
    """The task's instruction: the canonical one, or its held-out paraphrase."""
    phrases = PHRASES[task]
    return phrases[3] if held_out else phrases[0]


def paraphrase(text: str, rng: np.random.Generator) -> str:
    """A train phrasing of the task `text` names (canonical or a train paraphrase); other text unchanged."""
    phrases = _TRAIN.get(text)
    return text if phrases is None else phrases[int(rng.integers(len(phrases)))]


def task_of(text: str) -> str | None:
    """The task whose canonical instruction is `text`, or None."""
    return _CANONICAL.get(text)
