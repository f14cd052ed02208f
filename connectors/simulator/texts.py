"""Ticket wording: slot-filled English templates whose tone follows what the customer went through."""

from __future__ import annotations

import numpy as np

from connectors.simulator.experience import (
    ANGRY,
    BILLING,
    COMPLIMENT,
    COVERAGE,
    DEVICE,
    DROPPED,
    MILD,
    OUTAGE,
    PLAN,
    POSITIVE,
    ROAMING,
    SLOW_DATA,
)

SERVICES = (
    "mobile data",
    "4G",
    "5G",
    "calls",
    "WhatsApp calls",
    "video calls",
    "Netflix",
    "YouTube",
    "mobile banking",
    "Teams meetings",
    "Google Maps",
    "Spotify",
    "hotspot",
    "email",
    "Instagram",
)
DEVICES = (
    "iPhone 15",
    "iPhone 13",
    "Galaxy S24",
    "Galaxy A54",
    "Pixel 8",
    "Redmi Note 13",
    "Moto G84",
    "iPad",
    "Galaxy Tab S9",
    "Apple Watch",
)
COUNTRIES = ("Spain", "France", "the UK", "Brazil", "Morocco", "Germany", "Italy", "Switzerland")
PLANS = ("Unlimited 5G", "Smart 20GB", "Family Share 60GB", "Business Flex 30GB", "Prepaid Basic")
WHERE = (
    "at home in {place}",
    "in {place} centre",
    "near the station in {place}",
    "at work in {place}",
    "all over {place}",
    "around {place}",
    "in my street in {place}",
    "at our office in {place}",
)

SUBJECTS: dict[int, dict[int, tuple[str, ...]]] = {
    OUTAGE: {
        ANGRY: (
            "No service AGAIN in {place}",
            "Complete outage - {duration} without signal",
            "Network down in {place}, unacceptable",
            "Still no {service} after {duration}",
            "Third outage this month",
            "Losing business because your network is down",
        ),
        MILD: (
            "No signal in {place}",
            "Service interruption today",
            "Can't connect to {service}",
            "Network seems to be down in {place}",
        ),
    },
    SLOW_DATA: {
        ANGRY: (
            "Data is useless in {place}",
            "Paying for 5G, getting nothing",
            "Internet unusable for {duration}",
        ),
        MILD: (
            "Slow data {where}",
            "{service} keeps buffering",
            "Mobile internet very slow today",
            "Speed much lower than usual",
        ),
    },
    DROPPED: {
        ANGRY: ("Calls dropping constantly", "Cannot finish a single call", "Dropped calls all {daypart}"),
        MILD: ("Calls cutting out {where}", "Dropped calls today", "Call quality problems"),
    },
    COVERAGE: {
        ANGRY: ("Coverage in {place} is a joke", "Never any signal indoors"),
        MILD: ("Weak signal {where}", "Poor coverage indoors", "Signal drops to 1 bar {where}"),
    },
    BILLING: {
        MILD: (
            "Charged twice this month",
            "Unexpected charge on my bill",
            "Bill higher than usual",
            "Roaming charges I don't recognise",
        ),
        -1: (
            "Question about my invoice",
            "Change payment method",
            "Request copy of last bill",
            "Direct debit date change",
            "VAT number on invoice",
        ),
    },
    PLAN: {
        -1: (
            "Upgrade to {plan}",
            "Change of plan",
            "Add a line to my account",
            "Plan options for my family",
            "Switch to {plan} next month",
        )
    },
    DEVICE: {
        -1: (
            "eSIM activation for {device}",
            "New SIM card needed",
            "Setting up my new {device}",
            "Voicemail not working on my {device}",
            "Unlock request for {device}",
        )
    },
    ROAMING: {
        -1: (
            "Travelling to {country} next week",
            "Roaming pack for {country}",
            "Will my plan work in {country}?",
        )
    },
    COMPLIMENT: {
        POSITIVE: (
            "Thank you!",
            "Great support today",
            "Problem solved, thanks",
            "Compliment for your agent",
            "Happy with the new 5G speeds",
        )
    },
}

# Subject variants aligned by position with BODIES[category][tone], so subject and body agree.
ALIGNED_SUBJECTS: dict[tuple[int, int], tuple[tuple[str, ...], ...]] = {
    (BILLING, MILD): (
        ("Bill higher than usual", "Why is my bill so high?"),
        ("Charged twice this month", "Duplicate charge"),
        ("Roaming charges I don't recognise", "Wrong roaming charge"),
        ("Service I never ordered on my bill", "Unexpected charge on my bill"),
    ),
    (BILLING, -1): (
        ("Copy of my last invoice", "Invoice copy request"),
        ("Change payment method", "Switch to direct debit"),
        ("Payment date change", "Move my payment date"),
        ("VAT number on invoice", "Company details on invoices"),
        ("Question about my invoice", "Bill breakdown please"),
    ),
    (PLAN, -1): (
        ("Upgrade to {plan}", "Price of {plan}?"),
        ("Change of plan", "Switch to {plan} next month"),
        ("Add a line to my account", "New line for my son"),
        ("Plan recommendation", "Running out of data every month"),
        ("Switch plan without new contract?", "Plan change question"),
    ),
    (DEVICE, -1): (
        ("eSIM activation for {device}", "eSIM for my new {device}"),
        ("New SIM card needed", "Damaged SIM card"),
        ("Voicemail not working on my {device}", "Voicemail problem"),
        ("Unlock request for {device}", "Unlock code needed"),
        ("Hotspot on my {device}", "Setting up my new {device}"),
    ),
    (ROAMING, -1): (
        ("Travelling to {country} next week", "Roaming in {country}"),
        ("Roaming pack for {country}", "Roaming prices"),
        ("Will my plan work in {country}?", "Data abroad"),
    ),
}

OPENERS: dict[int, tuple[str, ...]] = {
    ANGRY: (
        "This is ridiculous.",
        "I am extremely frustrated.",
        "Honestly, this is the worst service I've had.",
        "I've had enough.",
        "Unbelievable.",
        "I'm furious.",
        "This is completely unacceptable.",
        "Once again your network has let me down.",
    ),
    MILD: (
        "Hi,",
        "Hello,",
        "Good afternoon,",
        "Hi there,",
        "Hello team,",
        "Hi, hope you can help.",
        "Good morning,",
    ),
    -1: ("Hello,", "Hi,", "Good morning,", "Dear support,", "Hi there,", "Good afternoon,"),
    POSITIVE: ("Hi,", "Hello,", "Just a quick note:", "Good evening,"),
}

BODIES: dict[int, dict[int, tuple[str, ...]]] = {
    OUTAGE: {
        ANGRY: (
            "I have had no signal {where} for {duration} and nobody has told me anything.",
            "My phone shows 'No service' {where} since {time}. I work from home and I've lost {duration} "
            "of work.",
            "No {service}, no calls {where} for {duration}. I pay {arpu} a month for this?",
            "The whole street has been without service for {duration}. "
            "My elderly mother cannot even call me.",
            "Your network went down {where} at {time} and it is still down. I need this fixed NOW.",
            "Our shop's card terminal runs on your SIM and it has been offline {where} for {duration}. "
            "We are losing sales.",
        ),
        MILD: (
            "I can't get any signal {where} since about {time}. Is there a known problem?",
            "There seems to be an outage {where}; no {service} for the last {duration}.",
            "My phone says no service {where}. Restarting didn't help. Any idea when it will be back?",
            "No network {where} since {time}. Could you check please?",
        ),
    },
    SLOW_DATA: {
        ANGRY: (
            "{service} has been unusable {where} for {duration}. Pages don't load at all.",
            "I pay for a premium plan and the internet {where} is slower than dial-up. "
            "Fix it or I'm leaving.",
            "For {duration} now {service} just spins. This is not what I'm paying {arpu} for.",
        ),
        MILD: (
            "Since {time} the mobile data {where} has been very slow; {service} keeps buffering.",
            "Speeds {where} are much lower than usual today. Is there maintenance going on?",
            "{service} is very slow {where} for the last {duration}. Could you look into it?",
            "Data has been sluggish {where} this {daypart}. Speed test shows under 1 Mbps.",
        ),
    },
    DROPPED: {
        ANGRY: (
            "Every call I make {where} drops after a minute. "
            "I've had to call back clients {count} times today.",
            "My calls keep dropping {where} since {time}. This is costing me business.",
            "I cannot hold a conversation {where}. {count} dropped calls this {daypart} alone!",
        ),
        MILD: (
            "Calls have been cutting out {where} this {daypart}, {count} times so far.",
            "I'm getting dropped calls {where} since {time}. The signal looks fine though.",
            "Voice quality is poor {where} and some calls drop. Can you check the network?",
        ),
    },
    COVERAGE: {
        ANGRY: (
            "I have complained before: there is no coverage inside my flat {where}. Nothing has changed.",
            "Signal {where} is terrible every single day. I'm thinking of switching operators.",
        ),
        MILD: (
            "Indoor signal {where} is weak, usually one bar. Is there anything that can improve it?",
            "Coverage {where} seems worse than it used to be. Calls sometimes fail to connect.",
            "I often lose signal {where}, especially in the {daypart}. Is a new mast planned?",
        ),
    },
    BILLING: {
        MILD: (
            "My bill this month is {amount} higher than usual and I don't understand why.",
            "I was charged twice for the same month. Please refund the duplicate of {amount}.",
            "There is a charge of {amount} for roaming but I haven't left the country.",
            "My invoice shows an extra service I never asked for. Please remove it.",
        ),
        -1: (
            "Could you send me a copy of my last invoice? I need it for my accountant.",
            "I would like to change my payment method to direct debit.",
            "Can I move my payment date to the 15th of each month?",
            "Please add our VAT number to future invoices.",
            "What is the breakdown of the {amount} on my last bill?",
        ),
    },
    PLAN: {
        -1: (
            "I'd like to upgrade to {plan}. What would my monthly price be?",
            "Can I change my plan to {plan} from next month?",
            "We want to add a new line for my son to our account. What are the options?",
            "I use much more data than my plan includes. Which plan would you recommend?",
            "Please let me know if I can switch to {plan} without a new contract.",
        ),
    },
    DEVICE: {
        -1: (
            "I just got a new {device} and need to activate an eSIM. How do I do that?",
            "My SIM card is damaged; can I get a replacement sent to {place}?",
            "Voicemail stopped working after I switched to a new {device}.",
            "I need the unlock code for my {device}.",
            "How do I set up the hotspot on my {device}?",
        ),
    },
    ROAMING: {
        -1: (
            "I'm travelling to {country} next week. Is roaming included in my plan?",
            "What does a roaming pack for {country} cost, and how do I activate it?",
            "Will my data work in {country} without extra charges?",
        ),
    },
    COMPLIMENT: {
        POSITIVE: (
            "The agent I spoke to this {daypart} was really helpful and solved my issue quickly. Thank you!",
            "Just wanted to say the 5G {where} is great now, much faster than before.",
            "Thanks for sorting out my bill so quickly.",
            "Your store staff in {place} were excellent. Well done.",
        ),
    },
}

CLOSERS: dict[int, tuple[str, ...]] = {
    ANGRY: (
        "If this isn't fixed today I'm cancelling my contract.",
        "I expect compensation.",
        "I want a call back from a manager.",
        "Seriously considering moving to another operator.",
        "I'll be posting about this.",
        "Sort it out.",
        "",
    ),
    MILD: ("Thanks.", "Thanks in advance.", "Please let me know.", "Regards.", "Appreciate your help.", ""),
    -1: ("Thank you.", "Kind regards.", "Thanks!", "Best regards.", ""),
    POSITIVE: ("Keep it up!", "Thanks again.", "", "Best wishes."),
}

AGENT_ACK = (
    "Ticket received; checking network status for {place}.",
    "Acknowledged. Looking into the account and recent activity.",
    "Customer contacted, gathering details.",
    "Assigned to {team}.",
    "Reproduced the issue; escalated to {team}.",
)
AGENT_INCIDENT = (
    "Linked to ongoing network incident {incident}; customer informed of the outage.",
    "Known incident {incident} affecting {place}; engineers on site.",
    "Confirmed impact from incident {incident}. Customer given an estimated restore time.",
)
AGENT_RESOLVE = (
    "Service restored after the network fix. Confirmed with the customer.",
    "Resolved: {resolution}.",
    "Issue resolved; customer confirmed things are working again.",
    "Closed after explanation and follow-up; {resolution}.",
)
RESOLUTIONS = (
    "explained the charges and applied a goodwill credit",
    "plan changed as requested",
    "eSIM profile sent",
    "refund issued",
    "replacement SIM dispatched",
    "roaming pack activated",
    "neighbour cell parameters retuned",
    "invoice copy emailed",
)
CUSTOMER_FOLLOWUP = (
    "Any update? Still not working.",
    "It's been hours and still nothing.",
    "Still waiting for a call back.",
    "Why is nobody answering?",
)
THANKS = (
    "Thanks, it's working again now.",
    "All good now, thank you for the quick fix.",
    "Service is back, appreciate the update.",
    "Thanks for keeping me informed.",
)
TEAMS = ("Network Operations", "Billing Support", "Tier 2 Support", "RAN Optimisation", "Customer Care")
DAYPARTS = ("morning", "afternoon", "evening")


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _tone_key(table: dict[int, tuple[str, ...]], tone: int) -> int:
    """The closest wording a table has for a tone: itself, else neutral (-1), else mild."""
    if tone in table:
        return tone
    if tone == ANGRY and MILD in table:
        return MILD
    if -1 in table:
        return -1
    return MILD if MILD in table else next(iter(table))


def _duration(hours: float, rng: np.random.Generator) -> str:
    minutes = max(20, int(hours * 60 + rng.integers(0, 40)))
    if minutes < 90:
        return f"{minutes} minutes"
    return f"{minutes / 60:.0f} hours" if minutes >= 150 else "over an hour"


def ticket_text(
    rng: np.random.Generator,
    category: int,
    tone: int,
    place: str,
    outage_h: float,
    arpu: float,
    hour: int,
    currency: str,
) -> tuple[str, str]:
    """(subject, description) for one ticket."""
    slots = {
        "place": place,
        "where": _pick(rng, WHERE).format(place=place),
        "service": _pick(rng, SERVICES),
        "device": _pick(rng, DEVICES),
        "country": _pick(rng, COUNTRIES),
        "plan": _pick(rng, PLANS),
        "duration": _duration(outage_h if outage_h > 0 else float(rng.uniform(0.5, 4)), rng),
        "time": f"{hour:02d}:{int(rng.integers(0, 4)) * 15:02d}",
        "arpu": f"{arpu:.2f} {currency}",
        "amount": f"{float(rng.uniform(4, 60)):.2f} {currency}",
        "count": str(int(rng.integers(3, 12))),
        "daypart": DAYPARTS[min(2, max(0, (hour - 6) // 6))],
    }
    subjects = SUBJECTS[category]
    key = _tone_key(BODIES[category], tone)
    bodies = BODIES[category][key]
    i = int(rng.integers(len(bodies)))
    body = bodies[i].format(**slots)
    if (category, key) in ALIGNED_SUBJECTS:
        subject = _pick(rng, ALIGNED_SUBJECTS[(category, key)][i])
    else:
        subject = _pick(rng, subjects[_tone_key(subjects, tone)])
    subject = subject.format(**slots)
    opener = _pick(rng, OPENERS[_tone_key(OPENERS, tone)])
    closer = _pick(rng, CLOSERS[_tone_key(CLOSERS, tone)])
    # A greeting ending in a comma goes on its own line, as in an email or chat message.
    head = f"{opener}\n{body}" if opener.endswith(",") else f"{opener} {body}"
    return subject, f"{head} {closer}".rstrip()


def agent_note(rng: np.random.Generator, kind: str, place: str, incident: str | None) -> str:
    team = _pick(rng, TEAMS)
    if kind == "ack":
        if incident:
            return _pick(rng, AGENT_INCIDENT).format(incident=incident, place=place)
        return _pick(rng, AGENT_ACK).format(place=place, team=team)
    return _pick(rng, AGENT_RESOLVE).format(resolution=_pick(rng, RESOLUTIONS))


def customer_note(rng: np.random.Generator, kind: str) -> str:
    return _pick(rng, THANKS if kind == "thanks" else CUSTOMER_FOLLOWUP)


__all__ = ["COVERAGE", "DROPPED", "OUTAGE", "SLOW_DATA", "agent_note", "customer_note", "ticket_text"]
