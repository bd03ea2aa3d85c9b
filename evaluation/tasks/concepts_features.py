"""The SAE's own concepts, a concept set: the features with the cleanest input-side explanations, each described by
the tokens it reads, with its top contexts as examples (`evaluation.concepts.feature_concepts`)."""
from evaluation.concepts import feature_concepts
from evaluation.task import ConceptSet, register

FEATURES = register(ConceptSet("features", "SAE features with clean input-side explanations (--feature-concepts of "
                                           "them)", feature_concepts))
