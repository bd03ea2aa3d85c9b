"""Concepts described in words, a concept set: data/concepts/word_concepts.jsonl, each with a description and example
texts, steered toward whatever features or directions a method finds (`evaluation.concepts.word_concepts`)."""
from evaluation.concepts import word_concepts
from evaluation.task import ConceptSet, register

WORDS = register(ConceptSet("words", "concepts described in words (data/concepts/word_concepts.jsonl)",
                            lambda records, n: word_concepts()))
