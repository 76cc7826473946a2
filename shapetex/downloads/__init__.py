"""Standard datasets and pretrained models by name: `registry` (the names, URLs and cache folders), `fetch` (one
verified, resumable download through pooch), `unpack` (archives, safely), `command` (`shapetex download`)."""
