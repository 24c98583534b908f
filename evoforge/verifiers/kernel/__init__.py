"""The kernel cascade: static → compile → correctness → resources → benchmark (see ``cascade``)."""
