"""How long rendering the signed PDF of a ~20-page consent takes, and its peak memory.

Builds one complete consent through the services (a long Markdown text, participant
signature, investigator countersignature), then renders its signed copy N times:
timings without tracing, then peak memory with tracemalloc (which slows Python
down, so it is measured apart). Also checks the page count and that every render
gives the same bytes.

    .venv/bin/python bench/consent_pdf.py --renders 20
    DATABASE_URL=postgresql+psycopg://root@127.0.0.1:5432/dct_bench \\
        .venv/bin/python bench/consent_pdf.py

The database is reset and migrated first: point it at a scratch database.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import time
import tracemalloc

from common import PASSWORD, make_app, reset
from consent_setup import add_patient, make_trial
from flask import Flask
from pypdf import PdfReader
from sqlalchemy.orm import Session

from consent import pdf, signing
from consent.models import Consent, ConsentDocument, ConsentSignature, SignerRole
from services.models import Participant, User
from services.people import participants as people

DEFAULT_URL = "sqlite:////tmp/dct_bench_consent_pdf.sqlite3"
SENTENCES = [
    "Taking part in this study is voluntary, and you may stop at any time without giving "
    "a reason and without any effect on your usual care.",
    "A study nurse visits you at home to measure your blood pressure, weight and heart "
    "rhythm, and to take a small blood sample.",
    "You answer short questionnaires on your phone about your breathing, your sleep and "
    "how you feel; each takes about five minutes.",
    "Your data are stored under a subject code; only the study team at your site, in "
    "Liège, Gent or Brussel, can link that code to your name.",
    "The sponsor's monitors may check your records against the source documents, under "
    "professional secrecy, to make sure the study is done correctly.",
    "Possible side effects include a bruise where blood is taken and, rarely, a "
    "skin reaction to the adhesive of the heart-rhythm patch.",
    "If you become pregnant during the study, tell the study team at once: the "
    "investigator will discuss with you whether you can continue.",
    "You will not be paid to take part, but travel costs for site visits are "
    "reimbursed on presentation of a receipt.",
]


def consent_markdown(sections: int) -> str:
    """A consent text of `sections` sections: headings, paragraphs and bullet lists."""
    parts = ["# Information for participants", ""]
    for n in range(sections):
        parts += [f"## {n + 1}. Section {n + 1} of the information", ""]
        for p in range(3):
            start = (n + p) % len(SENTENCES)
            sentences = (SENTENCES[start:] + SENTENCES[:start])[:4]
            parts += [" ".join(sentences), ""]
        parts += [f"- {SENTENCES[(n + k) % len(SENTENCES)]}" for k in range(3)] + [""]
    return "\n".join(parts)


def sign(
    session: Session,
    user: User,
    participant: Participant,
    document: ConsentDocument,
    role: SignerRole,
) -> ConsentSignature:
    return signing.sign(
        session,
        people.actor_for(session, user, "bench"),
        document.id,
        signing.SignatureRequest(
            participant_id=participant.id,
            role=role,
            full_name=user.full_name,
            password=PASSWORD,
            document_sha256=document.content_sha256,
            clause_choices={"future_research": True, "genetic_testing": False}
            if role == SignerRole.PARTICIPANT
            else {},
        ),
        signing.ClientInfo("127.0.0.1", "bench"),
    )


def build_consent(app: Flask, sections: int) -> tuple[Consent, Participant]:
    with app.extensions["db"].sessions() as session:
        trial = make_trial(
            session,
            consent_markdown(sections),
            {
                "future_research": "My samples may be used for future research.",
                "genetic_testing": "My samples may be tested genetically.",
            },
        )
        participant = add_patient(session, trial, "Łukasz Müller-Liège")
        sign(session, participant.user, participant, trial.document, SignerRole.PARTICIPANT)
        signature = sign(
            session, trial.coordinator, participant, trial.document, SignerRole.INVESTIGATOR
        )
        session.commit()
        consent = session.get(Consent, signature.consent_id)
        # Load everything the renderer reads, so the timings are rendering only.
        _ = (consent.document.body_markdown, [s.printed_name for s in consent.signatures])
        _ = (participant.study.title, participant.subject_code)
        return consent, participant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--memory-renders", type=int, default=3)
    parser.add_argument("--sections", type=int, default=34, help="about 20 pages at 34")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    reset(url)
    app = make_app(url, cheap_hashing=True)
    consent, participant = build_consent(app, args.sections)

    first = pdf.render(consent, participant)  # warm-up: font loading, imports
    pages = len(PdfReader(io.BytesIO(first)).pages)
    words = len(consent.document.body_markdown.split())

    times, digests = [], set()
    for _ in range(args.renders):
        started = time.perf_counter()
        data = pdf.render(consent, participant)
        times.append(time.perf_counter() - started)
        digests.add(hashlib.sha256(data).hexdigest())

    peaks = []
    for _ in range(args.memory_renders):
        tracemalloc.start()
        pdf.render(consent, participant)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()

    print(f"database: {app.extensions['db'].engine.dialect.name}")
    print(
        f"document: {words} words of Markdown, {len(consent.signatures)} signatures -> "
        f"{pages} pages, {len(first) / 1024:.0f} KiB PDF"
    )
    print(
        f"render x{args.renders}: median {statistics.median(times) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms "
        f"({statistics.median(times) * 1000 / pages:.1f} ms a page)"
    )
    print(
        f"peak traced Python memory a render (tracemalloc, x{args.memory_renders}): "
        f"median {statistics.median(peaks) / 2**20:.1f} MiB, max {max(peaks) / 2**20:.1f} MiB"
    )
    print(
        f"deterministic: {'yes' if digests == {hashlib.sha256(first).hexdigest()} else 'NO'}"
        f" ({len(digests)} distinct SHA-256 over {args.renders} renders)"
    )
    app.extensions["db"].engine.dispose()


if __name__ == "__main__":
    main()
