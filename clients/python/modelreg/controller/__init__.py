"""The rollout controller: `modelreg follow NS/MODEL@ALIAS --deployment NS/NAME` (rollout.py)."""
