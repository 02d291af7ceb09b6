"""Development lab, never packaged: simulated trader, local stack, demo, fakes for tests."""
