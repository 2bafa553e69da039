"""Write the small synthetic task files bundled in tinybert/sample_data/.

Run ``python tools/make_sample.py`` to regenerate them; the
fixed seed makes the output identical every time. The files have the same
names, headers and layout as the CS224N minBERT data (tab-separated, an
unnamed row-index column first), but every sentence is composed here from
templates and word lists, so that the labels follow learnable rules:

* SST: the sentiment is the class of the adjective(s) used; in "X, but Y"
  sentences the clause after "but" decides.
* Quora: a duplicate pair asks the same question about the same topic in
  two phrasings; a non-duplicate changes the question or the topic.
* STS: the score starts at 5 and drops for every part of the scene (who,
  doing what, with what, where) that differs, a little for a synonym.
"""
import csv
import random
from pathlib import Path

SEED = 224
SPLITS = {"train": 240, "dev": 60, "test-student": 40}
HERE = Path(__file__).resolve().parent.parent / "tinybert" / "sample_data"  # where the files are written

# ---------------------------------------------------------------- SST ----

# Sentiment class (0 = very negative ... 4 = very positive) -> adjectives.
ADJECTIVES = {
    0: ["dreadful", "unwatchable", "atrocious", "insufferable", "worthless", "miserable"],
    1: ["dull", "tedious", "clumsy", "forgettable", "sluggish", "tiresome"],
    2: ["ordinary", "uneven", "modest", "familiar", "middling", "serviceable"],
    3: ["charming", "enjoyable", "engaging", "likable", "solid", "pleasant"],
    4: ["brilliant", "superb", "masterful", "dazzling", "unforgettable", "magnificent"],
}
TITLES = [
    "Midnight Harbor", "The Glass Orchard", "Paper Lanterns", "Salt and Iron", "The Long Winter Road",
    "Copper Sky", "A Quiet Reckoning", "Northbound", "Velvet Static", "Four Small Rooms", "The Tin Orchid",
]
FILM_WORDS = ["film", "movie", "picture", "comedy", "thriller", "drama", "romance", "documentary"]
FILM_PARTS = ["acting", "script", "direction", "soundtrack", "pacing", "ending", "dialogue", "camera work", "plot"]

# Templates whose adjectives all share the sentence's class.
SST_PLAIN = [
    "{title} is {a_adj} {film}.",
    "The {part} is {adj}.",
    "What {a_adj} {film}.",
    "I found {title} {adj} from start to finish.",
    "{A_adj} {film} with {adj2} {part}.",
    "The {part} is {adj} and the {part2} is just as {adj2}.",
    "Even the {part} of this {film} feels {adj}.",
]
# Templates where {adj} has another class and {adj2} decides the label.
SST_CONTRAST = [
    "The {part} is {adj}, but the {film} as a whole is {adj2}.",
    "Despite its {adj} {part}, {title} is {adj2} overall.",
]


def with_article(words):
    """'an old man', 'a dull film': the indefinite article that fits ``words``."""
    return ("an " if words[0] in "aeiou" else "a ") + words


def sst_example(rng):
    """One (sentence, sentiment) pair."""
    label = rng.randrange(5)
    slots = {
        "title": rng.choice(TITLES), "film": rng.choice(FILM_WORDS),
        "part": rng.choice(FILM_PARTS), "part2": rng.choice(FILM_PARTS),
        "adj2": rng.choice(ADJECTIVES[label]),
    }
    if rng.random() < 0.25:
        template = rng.choice(SST_CONTRAST)
        other = rng.choice([c for c in ADJECTIVES if c != label])
        slots["adj"] = rng.choice(ADJECTIVES[other])
    else:
        template = rng.choice(SST_PLAIN)
        slots["adj"] = rng.choice(ADJECTIVES[label])
    slots["a_adj"] = with_article(slots["adj"])
    slots["A_adj"] = slots["a_adj"].capitalize()
    # The real SST sentences start with a space; keep that quirk.
    return " " + template.format(**slots), label


# -------------------------------------------------------------- Quora ----

TOPICS = [
    "machine learning", "guitar", "Spanish", "chess", "photography", "calculus", "cooking", "Python",
    "painting", "public speaking", "statistics", "Japanese", "woodworking", "graphic design", "piano",
]
# Question intent -> interchangeable phrasings of it.
QUESTIONS = {
    "learn": ["How can I learn {t} quickly?", "What is the fastest way to learn {t}?",
              "How do I learn {t} fast?", "What is the quickest way to pick up {t}?"],
    "start": ["How should a beginner start with {t}?", "Where do I begin if I want to get into {t}?",
              "What is a good first step for a beginner in {t}?"],
    "hard": ["Why is {t} so hard to learn?", "What makes {t} so difficult?",
             "Why do people find {t} so difficult?"],
    "books": ["What are the best books about {t}?", "Which books would you recommend on {t}?",
              "What are some good books to learn {t} from?"],
    "career": ["Is {t} a good career choice?", "Is it worth choosing {t} as a career?",
               "Would {t} be a good career path?"],
    "cost": ["How much does it cost to study {t}?", "How expensive is it to learn {t}?",
             "What does a course in {t} usually cost?"],
}


def quora_example(rng):
    """One (question1, question2, is_duplicate) triple."""
    intent, topic = rng.choice(list(QUESTIONS)), rng.choice(TOPICS)
    kind = rng.random()
    if kind < 0.4:  # duplicate: same intent and topic, different phrasing
        first, second = rng.sample(QUESTIONS[intent], 2)
        return first.format(t=topic), second.format(t=topic), 1.0
    if kind < 0.7:  # same topic, different question
        other_intent = rng.choice([i for i in QUESTIONS if i != intent])
        other_topic = topic
    else:  # same question, different topic
        other_intent = intent
        other_topic = rng.choice([t for t in TOPICS if t != topic])
    first = rng.choice(QUESTIONS[intent]).format(t=topic)
    second = rng.choice(QUESTIONS[other_intent]).format(t=other_topic)
    return first, second, 0.0


# ---------------------------------------------------------------- STS ----

# Each inner list holds synonyms for one meaning.
SUBJECTS = [["man", "guy"], ["woman", "lady"], ["boy", "young boy"], ["girl", "young girl"],
            ["chef", "cook"], ["student", "pupil"], ["old man", "elderly man"]]
# An activity: synonymous verbs, and the objects that fit them (as synonym lists).
ACTIVITIES = [
    (["playing", "performing on"], [["a guitar", "an acoustic guitar"], ["a piano", "a keyboard"],
                                    ["a violin", "a fiddle"]]),
    (["slicing", "cutting"], [["an onion", "a red onion"], ["some bread", "a loaf of bread"],
                              ["a tomato", "a ripe tomato"]]),
    (["riding", "sitting on"], [["a bicycle", "a bike"], ["a horse", "a pony"]]),
    (["reading", "looking through"], [["a newspaper", "a paper"], ["a book", "a novel"], ["a map", "a road map"]]),
    (["carrying", "holding"], [["a box", "a cardboard box"], ["a bag", "a backpack"], ["an umbrella", "a parasol"]]),
]
PLACES = [["in a park", "in the park"], ["on a stage", "on the stage"], ["in the kitchen", "in a kitchen"],
          ["on the street", "on a busy street"], ["at the beach", "on the beach"], ["in a classroom", "in class"]]

# How much each kind of difference lowers the 0-5 similarity score.
PENALTY = {"subject": 1.2, "activity": 2.6, "object": 1.4, "place": 0.8, "no place": 0.4, "synonym": 0.2}


def caption(subject, verb, obj, place):
    """'A man is playing a guitar in a park.' (place may be empty)."""
    return f"{with_article(subject).capitalize()} is {verb} {obj}{' ' + place if place else ''}."


def sts_example(rng):
    """One (sentence1, sentence2, similarity) triple."""
    subject, activity = rng.randrange(len(SUBJECTS)), rng.randrange(len(ACTIVITIES))
    obj, place = rng.randrange(len(ACTIVITIES[activity][1])), rng.randrange(len(PLACES))
    first = caption(SUBJECTS[subject][0], ACTIVITIES[activity][0][0],
                    ACTIVITIES[activity][1][obj][0], PLACES[place][0])

    penalty = 0.0

    def pick(options, index, slot):
        """Keep a slot's words, say them with a synonym, or change their meaning."""
        nonlocal penalty
        roll = rng.random()
        if roll < 0.3:
            penalty += PENALTY[slot]
            return rng.choice([words for i, words in enumerate(options) if i != index])[0]
        if roll < 0.6:
            penalty += PENALTY["synonym"]
            return options[index][1]
        return options[index][0]

    new_subject = pick(SUBJECTS, subject, "subject")
    if rng.random() < 0.3:  # a different activity brings its own verb and object
        penalty += PENALTY["activity"]
        verbs, objects = rng.choice([a for i, a in enumerate(ACTIVITIES) if i != activity])
        new_verb, new_obj = verbs[0], rng.choice(objects)[0]
    else:
        verbs, objects = ACTIVITIES[activity]
        new_verb, new_obj = verbs[0], pick(objects, obj, "object")
        if rng.random() < 0.3:
            penalty += PENALTY["synonym"]
            new_verb = verbs[1]
    if rng.random() < 0.15:
        penalty += PENALTY["no place"]
        new_place = ""
    else:
        new_place = pick(PLACES, place, "place")

    noise = rng.uniform(-0.2, 0.2)
    score = round(min(5.0, max(0.0, 5.0 - penalty + noise)), 1)
    return first, caption(new_subject, new_verb, new_obj, new_place), score


# ------------------------------------------------------------ writing ----

def unique_examples(make, count, rng, key):
    """``count`` examples from ``make(rng)``, no two sharing ``key(example)``."""
    seen, examples = set(), []
    while len(examples) < count:
        example = make(rng)
        if key(example) not in seen:
            seen.add(key(example))
            examples.append(example)
    return examples


def write_tsv(path, header, rows):
    """Write one tab-separated file, quoting like the originals do (only when needed)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def fake_id(rng):
    """A 25-hex-digit id like those of the real files."""
    return f"{rng.getrandbits(100):025x}"


def write_task(prefix, label_name, text_names, examples, rng):
    """Split ``examples`` into the three files of one task and write them."""
    start = 0
    for split, size in SPLITS.items():
        part = examples[start:start + size]
        start += size
        path = HERE / f"{prefix}-{split}.csv"
        if split != "test-student":
            header = ["", "id", *text_names, label_name]
            rows = [[i, fake_id(rng), *example] for i, example in enumerate(part)]
        elif prefix == "ids-sst":
            # The real SST test file carries an extra index column and a header
            # that starts with "0"; mirror it so loaders meet it here too.
            header = ["0", "", "id", *text_names]
            rows = [[i + 1, f"{i}.0", fake_id(rng), *example[:-1]] for i, example in enumerate(part)]
        else:
            header = ["", "id", *text_names]
            rows = [[i, fake_id(rng), *example[:-1]] for i, example in enumerate(part)]
        write_tsv(path, header, rows)


def main():
    """Regenerate all nine sample files."""
    rng = random.Random(SEED)
    total = sum(SPLITS.values())
    sst = unique_examples(sst_example, total, rng, key=lambda e: e[0])
    quora = unique_examples(quora_example, total, rng, key=lambda e: e[:2])
    sts = unique_examples(sts_example, total, rng, key=lambda e: e[:2])
    write_task("ids-sst", "sentiment", ["sentence"], sst, rng)
    write_task("quora", "is_duplicate", ["sentence1", "sentence2"], quora, rng)
    write_task("sts", "similarity", ["sentence1", "sentence2"], sts, rng)


if __name__ == "__main__":
    main()
