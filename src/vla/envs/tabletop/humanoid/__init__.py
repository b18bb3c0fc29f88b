"""The tabletop suite with the Unitree G1 humanoid (`vla.robots.g1`) as its robot.

`suite.make(family, robot="humanoid")` builds a `HumanoidTabletopEnv` (env.py): the G1 standing at its
table with objects sized for its hands (objects.py), the families of tasks.py with the instructions of
language.py, and the whole-body scripted experts of expert.py. docs/robots.md lists the families and
the experts' measured success.
"""
