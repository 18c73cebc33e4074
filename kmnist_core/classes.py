"""The ten KMNIST classes: index -> hiragana, romaji, Unicode codepoint."""

from dataclasses import dataclass


@dataclass(frozen=True)
class KanaClass:
    index: int
    hiragana: str
    romaji: str

    @property
    def codepoint(self) -> str:
        return f"U+{ord(self.hiragana):04X}"

    @property
    def label(self) -> str:
        return f"{self.hiragana} ({self.romaji})"


CLASSES = tuple(
    KanaClass(i, kana, romaji)
    for i, (kana, romaji) in enumerate(
        [("お", "o"), ("き", "ki"), ("す", "su"), ("つ", "tsu"), ("な", "na"),
         ("は", "ha"), ("ま", "ma"), ("や", "ya"), ("れ", "re"), ("を", "wo")]
    )
)
NUM_CLASSES = len(CLASSES)
