"""Other engines that generate with the workbench's steering: ``vllm`` (optional, ``make vllm``)."""
