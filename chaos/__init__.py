"""make chaos: a steady order load through the gateway while components are killed (-9) and restarted in turn,
with a timeline and the consistency auditor's verdict after each fault settles (README, "make chaos")."""
