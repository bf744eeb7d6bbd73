"""Shell helpers the layers share: the warehouse IO manager, metadata, failures, automation, staleness, keys, partitions, knobs."""
