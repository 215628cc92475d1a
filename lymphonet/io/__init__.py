"""Readers and writers: every file format lands on :class:`~lymphonet.io.volume.Volume`."""

from lymphonet.io.volume import StructureSet, Volume

__all__ = ["StructureSet", "Volume"]
