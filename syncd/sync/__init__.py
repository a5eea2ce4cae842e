"""The sync pass: what a pass decides (``plan``, pure) apart from how it gets
its inputs and writes its results (``syncd.engine``)."""
