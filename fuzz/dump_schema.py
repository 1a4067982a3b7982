"""Write the walker's schema tables (from the installed opentelemetry-proto) for
the C fuzz harness: u32 message count, then per message u32 length + int32
quadruples (fastspans.schema())."""
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from collector.receiver import fastspans  # noqa: E402

msgs = fastspans.schema()
sys.stdout.buffer.write(struct.pack("<I", len(msgs)) + b"".join(struct.pack("<I", len(m)) + m for m in msgs))
