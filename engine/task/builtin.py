"""Built-in tasks generated from code: the demo's tasks and a fresh machine's, with no files.

They follow the spirit of the instruction-induction set (Honovich et al. 2022) that APE was
evaluated on: each has a one-line human instruction, a description, and several hundred examples
drawn deterministically from a seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.errors import DatasetError
from engine.task.types import Example, Task

__all__ = ["BUILTIN_TASKS", "builtin_task", "builtin_task_names", "number_to_words"]

WORDS = (
    "apple", "river", "garden", "window", "candle", "forest", "bridge", "pencil", "rocket",
    "ticket", "island", "market", "castle", "planet", "jacket", "button", "mirror", "shadow",
    "pillow", "basket", "bottle", "camera", "doctor", "engine", "farmer", "finger", "flower",
    "guitar", "hammer", "helmet", "kitten", "ladder", "lemon", "letter", "monkey", "needle",
    "orange", "parrot", "pepper", "pocket", "rabbit", "saddle", "silver", "spider", "summer",
    "tunnel", "turtle", "wallet", "winter", "yellow", "anchor", "beacon", "cactus", "dragon",
    "falcon", "ginger", "harbor", "insect", "jungle", "kettle", "lizard", "magnet", "napkin",
    "oyster", "puzzle", "quartz", "ribbon", "saucer", "timber", "umpire", "velvet", "walnut",
    "zipper", "cloud", "stone", "table", "chair", "house", "plant", "storm", "beach", "horse",
    "tiger", "piano", "violin", "train", "truck", "bread", "cheese", "honey", "sugar", "salt",
    "music", "paper", "glass", "metal", "night", "morning", "evening", "family", "friend",
    "school", "teacher", "student", "library", "kitchen", "village", "city", "country", "mountain",
    "valley", "desert", "ocean", "meadow", "orchard", "lantern", "compass", "blanket", "carpet",
    "curtain", "feather", "giraffe", "penguin", "dolphin", "elephant", "volcano", "rainbow",
    "thunder", "diamond", "emerald", "crystal", "journey", "picture", "story", "dream", "smile",
    "voice", "word", "number", "circle", "square", "triangle", "acorn", "actor", "airport",
    "album", "alley", "angel", "ankle", "antler", "apron", "arch", "arrow", "artist", "atlas",
    "attic", "avenue", "badge", "bakery", "balcony", "bamboo", "banana", "bandit", "banner",
    "barrel", "beard", "beetle", "bell", "bench", "berry", "bicycle", "biscuit", "blade",
    "blossom", "boat", "bonnet", "border", "boulder", "bracelet", "branch", "brick", "broom",
    "brush", "bubble", "bucket", "buffalo", "bugle", "bundle", "burrow", "butter", "cabin",
    "cable", "canal", "canoe", "canvas", "canyon", "captain", "cargo", "carrot", "cattle",
    "cellar", "cement", "chalk", "channel", "chapel", "cherry", "chimney", "chorus", "cinema",
    "clover", "coast", "cobweb", "coffee", "collar", "comet", "copper", "coral", "cotton",
    "cradle", "crane", "crater", "cricket", "crown", "cushion", "dagger", "daisy", "dancer",
    "dentist", "diary", "dinner", "donkey", "dove", "drawer", "drum", "eagle", "echo", "elbow",
    "fence", "ferry", "fiddle", "fossil", "fountain", "frog", "galaxy", "garlic", "gate",
    "glacier", "glove", "goblet", "grape", "gravel", "hamster", "harp", "hawk", "hedge", "hill",
    "hive", "hotel", "iceberg", "igloo", "jewel", "judge", "kayak", "kernel", "kingdom", "knight",
    "koala", "lagoon", "lake", "lamp", "lawyer", "leopard", "lighthouse", "lily", "lobster",
    "locket", "lodge", "lotus", "mango", "maple", "marble", "mask", "medal", "melon", "mitten",
    "moose", "moth", "mural", "museum", "nest", "noodle", "nugget", "oasis", "olive", "onion",
    "opera", "otter", "owl", "paddle", "palace", "panda", "parcel", "peach", "peanut", "pearl",
    "pebble", "pelican", "pirate", "pistol", "plum", "pond", "poppy", "portal", "prairie", "prism",
    "pumpkin", "pyramid", "quilt", "raccoon", "radar", "radish", "raven", "reef", "robot",
    "rooster", "rope", "ruby", "sailor", "salmon", "sandal", "satchel", "scarf", "scooter",
    "seagull", "sheriff", "shovel", "skate", "sled", "slipper", "snail", "sparrow", "spinach",
    "sponge", "squirrel", "stadium", "statue", "stove", "straw", "sunset", "swan", "sword",
    "tablet", "teapot", "temple", "tent", "thimble", "thistle", "throne", "tractor", "trumpet",
    "tulip", "turnip", "umbrella", "unicorn", "vase", "vessel", "vulture", "wagon", "waffle",
    "walrus", "wheel", "whistle", "willow", "wizard", "yacht", "yarn", "zebra",
)  # fmt: skip

_IRREGULAR_PLURALS = {
    "child": "children", "mouse": "mice", "goose": "geese", "tooth": "teeth", "foot": "feet",
    "man": "men", "woman": "women", "person": "people", "ox": "oxen", "leaf": "leaves",
    "knife": "knives", "wolf": "wolves", "half": "halves", "loaf": "loaves", "shelf": "shelves",
    "sheep": "sheep", "fish": "fish", "deer": "deer", "cactus": "cacti", "city": "cities",
    "country": "countries", "story": "stories", "family": "families", "library": "libraries",
    "potato": "potatoes", "tomato": "tomatoes", "hero": "heroes", "box": "boxes", "bus": "buses",
    "glass": "glasses", "dish": "dishes", "watch": "watches", "church": "churches",
}  # fmt: skip

#: Word pairs of opposite meaning; each gives two examples, a -> b and b -> a, and
#: no word appears twice, so every input has exactly one answer.
_ANTONYM_PAIRS = (
    "hot cold", "big small", "tall short", "fast slow", "happy sad", "light dark", "open closed",
    "early late", "young old", "rich poor", "strong weak", "hard soft", "full empty", "wet dry",
    "loud quiet", "clean dirty", "thick thin", "deep shallow", "high low", "near far",
    "first last", "top bottom", "inside outside", "above below", "before after", "push pull",
    "buy sell", "give take", "win lose", "laugh cry", "love hate", "remember forget",
    "accept reject", "arrive depart", "ask answer", "begin end", "borrow lend", "build destroy",
    "catch throw", "come go", "enter exit", "float sink", "increase decrease", "include exclude",
    "lead follow", "join separate", "teach learn", "sit stand", "sleep wake", "spend save",
    "whisper shout", "wide narrow", "sharp blunt", "smooth rough", "sweet sour", "brave cowardly",
    "polite rude", "honest dishonest", "kind cruel", "generous stingy", "humble proud",
    "calm anxious", "cheap expensive", "safe dangerous", "simple complex", "true false",
    "right wrong", "alive dead", "ancient modern", "asleep awake", "absent present",
    "guilty innocent", "major minor", "maximum minimum", "positive negative", "public private",
    "male female", "north south", "east west", "day night", "summer winter", "sunrise sunset",
    "friend enemy", "hero villain", "victory defeat", "success failure", "peace war", "joy sorrow",
    "truth lie", "import export", "input output", "floor ceiling", "king queen", "husband wife",
    "brother sister", "uncle aunt", "nephew niece", "boy girl", "predator prey", "teacher student",
    "employer employee", "buyer seller", "host guest", "master servant", "majority minority",
    "optimist pessimist", "temporary permanent", "visible invisible", "legal illegal",
    "possible impossible", "patient impatient", "regular irregular", "responsible irresponsible",
    "mature immature", "rational irrational", "frequent rare", "fresh stale", "tight loose",
    "straight crooked", "fancy plain", "gentle harsh", "shiny dull", "noisy silent", "messy tidy",
    "lazy diligent", "clever stupid", "fake genuine", "common unusual", "vertical horizontal",
    "expand shrink", "attack defend", "appear vanish", "allow forbid", "admit deny",
    "advance retreat", "agree disagree", "approve disapprove", "attach detach", "blame praise",
    "bless curse", "capture release", "connect disconnect", "construct demolish", "continue stop",
    "encourage discourage", "freeze melt", "gather scatter", "hide reveal", "hire fire",
    "inhale exhale", "lengthen shorten", "lock unlock", "maximize minimize", "obey disobey",
    "pack unpack", "raise lower", "reward punish", "rise fall", "tie untie", "victor loser",
    "wealth poverty", "wisdom folly", "ally foe", "arrival departure", "beginning ending",
    "birth death", "comedy tragedy", "dawn dusk", "feast famine", "gain loss", "hope despair",
    "odd even", "order chaos", "plus minus", "rural urban", "sane insane", "strict lenient",
    "sober drunk", "solid liquid", "spacious cramped", "transparent opaque", "uphill downhill",
    "upstairs downstairs", "vacant occupied", "wild tame", "asset liability", "cautious reckless",
    "colorful drab", "dim bright", "elderly youthful", "foolish wise", "fragile sturdy",
    "frank evasive", "graceful clumsy", "hostile friendly", "idle busy", "inferior superior",
    "innocence guilt", "knowledge ignorance", "modest arrogant", "natural artificial",
    "obvious obscure", "ordinary extraordinary", "partial complete", "passive active",
    "precise vague", "scarce plentiful", "serious playful", "sincere insincere", "single married",
    "timid bold", "tiny huge", "valuable worthless", "vivid faint", "junior senior",
    "mobile stationary", "native foreign", "outer inner", "rapid sluggish", "sacred profane",
)  # fmt: skip


_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_to_words(number: int) -> str:
    """English words for 0 <= number < 1,000,000 ("four thousand two hundred seven")."""
    if not 0 <= number < 1_000_000:
        raise ValueError(f"number_to_words covers 0..999999, not {number}")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    return f"{number_to_words(thousands)} thousand" + (f" {number_to_words(rest)}" if rest else "")


def plural(word: str) -> str:
    """The English plural of a noun, with the common irregular forms."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word]
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


Pair = tuple[str, str]
Generator = Callable[[np.random.Generator, int], list[Pair]]


def _words(rng: np.random.Generator, count: int, pool: tuple[str, ...] = WORDS) -> list[str]:
    """Distinct words (as many as the vocabulary has, at most `count`), in a seeded order."""
    return [str(w) for w in rng.permutation(np.array(pool))[:count]]


def _pairs_of_numbers(rng: np.random.Generator, count: int, high: int) -> list[tuple[int, int]]:
    numbers = rng.integers(0, high, size=(count, 2))
    return [(int(a), int(b)) for a, b in numbers]


def _first_letter(rng: np.random.Generator, count: int) -> list[Pair]:
    return [(w, w[0]) for w in _words(rng, count)]


def _reverse_word(rng: np.random.Generator, count: int) -> list[Pair]:
    return [(w, w[::-1]) for w in _words(rng, count)]


def _letters_list(rng: np.random.Generator, count: int) -> list[Pair]:
    return [(w, " ".join(w)) for w in _words(rng, count)]


def _plural(rng: np.random.Generator, count: int) -> list[Pair]:
    pool = tuple(dict.fromkeys(WORDS + tuple(_IRREGULAR_PLURALS)))
    return [(w, plural(w)) for w in _words(rng, count, pool)]


def antonym_pairs() -> list[tuple[str, str]]:
    """The bundled pairs of opposites, each once, in the order written."""
    return [(pair.split()[0], pair.split()[1]) for pair in _ANTONYM_PAIRS]


def _antonyms(rng: np.random.Generator, count: int) -> list[Pair]:
    both_ways = [p for a, b in antonym_pairs() for p in ((a, b), (b, a))]
    return [both_ways[int(i)] for i in rng.permutation(len(both_ways))[:count]]


def _sum(rng: np.random.Generator, count: int) -> list[Pair]:
    return [(f"{a} {b}", str(a + b)) for a, b in _pairs_of_numbers(rng, count, 100)]


def _difference(rng: np.random.Generator, count: int) -> list[Pair]:
    pairs = _pairs_of_numbers(rng, count, 100)
    return [(f"{max(a, b)} {min(a, b)}", str(abs(a - b))) for a, b in pairs]


def _larger_number(rng: np.random.Generator, count: int) -> list[Pair]:
    pairs = [(a, b) for a, b in _pairs_of_numbers(rng, count * 2, 1000) if a != b][:count]
    return [(f"{a}, {b}", str(max(a, b))) for a, b in pairs]


def _num_to_words(rng: np.random.Generator, count: int) -> list[Pair]:
    return [(str(int(x)), number_to_words(int(x))) for x in rng.integers(0, 10_000, size=count)]


@dataclass(frozen=True, slots=True)
class BuiltinTask:
    name: str
    human_instruction: str
    description: str
    generate: Generator
    metric: str = "exact_match"
    size: int = 600


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    t.name: t
    for t in (
        BuiltinTask("first_letter", "Write the first letter of the word.",
                    "Given a word, answer with its first letter.", _first_letter),
        BuiltinTask("reverse_word", "Write the word backwards.",
                    "Given a word, answer with its letters in reverse order.", _reverse_word),
        BuiltinTask("letters_list", "Write the letters of the word separated by spaces.",
                    "Given a word, list its letters separated by single spaces.", _letters_list),
        BuiltinTask("singular_to_plural", "Write the plural form of the word.",
                    "Given a singular noun, answer with its plural.", _plural),
        BuiltinTask("antonyms", "Write a word that means the opposite of the input word.",
                    "Given a word, answer with its antonym (from a bundled list of opposites).",
                    _antonyms),
        BuiltinTask("sum", "Add the two numbers.",
                    "Given two numbers, answer with their sum.", _sum),
        BuiltinTask("difference", "Subtract the second number from the first.",
                    "Given two numbers, answer with the first minus the second.", _difference),
        BuiltinTask("larger_number", "Write the larger of the two numbers.",
                    "Given two numbers, answer with the larger one.", _larger_number),
        BuiltinTask("num_to_words", "Write the number in English words.",
                    "Given a number in digits, answer with it spelled out in English words.",
                    _num_to_words),
    )
}  # fmt: skip


def builtin_task_names() -> list[str]:
    return list(BUILTIN_TASKS)


def builtin_task(name: str, *, seed: int = 0, size: int | None = None) -> Task:
    """Generate a built-in task; the same (name, seed, size) always gives the same examples."""
    spec = BUILTIN_TASKS.get(name)
    if spec is None:
        raise DatasetError(
            f"no built-in task named {name!r}; built-in tasks: {', '.join(BUILTIN_TASKS)} "
            "(or give the path of a task file)"
        )
    rng = np.random.default_rng([seed, sum(name.encode())])
    # One example per distinct input, so that pools split from it never share an input.
    pairs = dict(spec.generate(rng, size or spec.size))
    examples = tuple(
        Example(input=x, outputs=(y,), key=f"{name}:{i}") for i, (x, y) in enumerate(pairs.items())
    )
    return Task(
        name=name,
        examples=examples,
        metric=spec.metric,
        human_instruction=spec.human_instruction,
        description=spec.description,
        source=f"builtin:{name}",
    )
