"""The Unitree G1 humanoid with Dex3 hands: model, balance, whole-body controller, embodiment."""
