"""Files every part writes: atomic writes (a file exists whole or not at all) and mp4 videos."""
