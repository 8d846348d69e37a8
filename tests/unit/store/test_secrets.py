"""CRC32C as Secret Manager computes it."""

from offline_access.store.secrets import crc32c


def test_crc32c_known_answer():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
