"""The `cxr` command: wiring only. It may import every room (cxr, jobs, preprocessing, …); no room imports it."""
