"""Discovery: list a provider's users and enrol the new ones as targets.

A listing is evidence, never a verdict: it adds targets and makes missing
ones due, so the by-id read (with its 404 confirmation and the mass-deletion
guard) decides every deletion. ``listing`` checks that a listing is complete,
``reconcile`` compares it with the targets; both are pure.
"""
