"""The demo: three real tasks from PyPI data packages (`data`) on all-MiniLM-L6-v2, trained, scored and reloaded
(`run`)."""
