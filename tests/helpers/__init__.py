"""Helpers shared by the test files: tiny models and configs (``tiny_mp3d``, ``tiny_coco``,
``paper_config``), synthetic volumes and DeepLesion files (``volume_fixtures``,
``deeplesion_files``), viewer-file checks (``viewer_fixtures``: Node + @cornerstonejs/adapters),
FROC samples (``froc_samples``), multichannel inputs, a toy runner for checkpoint tests, and the
one-line-error assertion of every command (``assertions``)."""
