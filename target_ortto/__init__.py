"""target-ortto: a Singer target that loads people, accounts and audiences into Ortto."""
