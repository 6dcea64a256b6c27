"""A container's output: ``logs`` (the monitor's framed, rotated log files and their
reader) and ``streams`` (logs, exec and attach as HTTP streams, Docker-multiplexed or not).
"""

__all__ = ["logs", "streams"]
