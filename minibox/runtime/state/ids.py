"""Container ids (64 hex, shown as 12) and docker-like generated names."""

from __future__ import annotations

import os
import random

_ADJECTIVES = (
    "admiring adoring agitated amazing angry awesome blissful bold boring brave busy charming "
    "clever cool compassionate competent condescending confident cranky crazy dazzling "
    "determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic exciting "
    "fervent festive flamboyant focused friendly frosty funny gallant gifted goofy gracious "
    "happy hardcore heuristic hopeful hungry infallible inspiring intelligent interesting "
    "jolly jovial keen kind laughing loving lucid magical modest musing mystifying naughty "
    "nervous nice nifty nostalgic objective optimistic peaceful pedantic pensive practical "
    "priceless quirky quizzical recursing relaxed reverent romantic sad serene sharp silly "
    "sleepy stoic strange stupefied suspicious sweet tender thirsty trusting unruffled upbeat "
    "vibrant vigilant vigorous wizardly wonderful xenodochial youthful zealous zen").split()
_NAMES = (
    "albattani allen almeida agnesi archimedes ardinghelli aryabhata austin babbage banach "
    "bardeen bartik bassi beaver bell benz bhabha bhaskara blackwell bohr booth borg bose "
    "brahmagupta brattain brown carson cerf chandrasekhar chatelet chaum chebyshev clarke "
    "colden cori cray curie darwin davinci dijkstra dubinsky easley edison einstein elion "
    "engelbart euclid euler fermat fermi feynman franklin galileo gates goldberg goldstine "
    "goldwasser golick goodall hamilton hawking heisenberg hermann hodgkin hoover hopper "
    "hugle hypatia jackson jang jennings jepsen johnson joliot jones kalam kapitsa keller "
    "kepler khorana kilby kirch knuth kowalevski lalande lamarr lamport leakey leavitt "
    "lederberg lehmann lewin lichterman liskov lovelace lumiere mahavira margulis matsumoto "
    "maxwell mayer mccarthy mcclintock mclean mcnulty meitner mendel mendeleev merkle "
    "mirzakhani montalcini moore morse murdock napier nash neumann newton nightingale nobel "
    "noether northcutt noyce panini pare pascal pasteur payne perlman pike poincare poitras "
    "ptolemy raman ramanujan ride ritchie robinson roentgen rosalind rubin saha sammet "
    "sanderson satoshi shannon shaw shirley shockley sinoussi snyder spence stonebraker "
    "sutherland swanson swartz swirles taussig tesla thompson torvalds turing varahamihira "
    "villani visvesvaraya volhard wescoff wiles williams wilson wing wozniak wright wu yalow "
    "yonath zhukovsky").split()


def new_id() -> str:
    return os.urandom(32).hex()


def short(cid: str) -> str:
    return cid[:12]


def random_name(taken) -> str:
    """``adjective_scientist``, with a digit appended if needed (like docker)."""
    rnd = random.SystemRandom()
    for attempt in range(100):
        name = f"{rnd.choice(_ADJECTIVES)}_{rnd.choice(_NAMES)}"
        if attempt:
            name += str(rnd.randint(0, 99))
        if name not in taken:
            return name
    return "c_" + new_id()[:16]
