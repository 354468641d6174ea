"""Budget guard Lambda: blocks a team in the LiteLLM gateway while its cost alarm is in ALARM."""
