"""exporter: facts about the trader (journal, log, process) turned into restart events, causes and metrics."""
