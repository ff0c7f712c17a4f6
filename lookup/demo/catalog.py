"""The fixed vocabulary of the demo data: names, places, phone ranges, products, audiences.

Every phone number comes from a range set aside for fiction (US/Canada 555-0100..0199,
Ofcom's drama ranges in the UK, ACMA's in Australia, ARCEP's in France), so the demo
never rings a real person. Emails use the reserved example.* domains.
"""

from __future__ import annotations

# Country -> (first names, last names, cities). A few names carry diacritics on purpose.
PEOPLE = {
    "US": (
        ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "Aaliyah", "DeShawn",
         "Mei", "Carlos", "Priya", "Ethan", "Olivia", "Noah", "José", "Sofía", "Zoë"),
        ("Smith", "Johnson", "Williams", "Brown", "Garcia", "Miller", "Davis", "Nguyen",
         "Patel", "Kim", "Rodríguez", "O'Brien", "Washington", "Chen"),
        ("San Francisco", "New York", "Chicago", "Boston", "Seattle", "Austin", "Denver"),
    ),
    "CA": (
        ("Émilie", "Liam", "Chloé", "William", "Zoë", "Mathis", "Gurpreet", "Avery"),
        ("Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "MacDonald", "Wilson", "Singh"),
        ("Toronto", "Montréal", "Vancouver", "Calgary"),
    ),
    "GB": (
        ("Oliver", "Amelia", "Harry", "Isla", "George", "Łukasz", "Siobhan", "Rhys", "Fatima",
         "Mohammed", "Agnieszka"),
        ("Smith", "Jones", "Taylor", "Evans", "Kowalski", "Wiśniewski", "Ahmed", "O'Connor",
         "Davies", "Hughes"),
        ("London", "Manchester", "Leeds", "Cardiff", "Glasgow"),
    ),
    "AU": (
        ("Charlotte", "Jack", "Mia", "Lachlan", "Ngaire", "Mason", "Matilda"),
        ("Smith", "Jones", "Wilson", "Taylor", "Nguyen", "Kelly", "Papadopoulos"),
        ("Sydney", "Melbourne", "Brisbane", "Perth"),
    ),
    "FR": (
        ("Léa", "Hugo", "Chloé", "Lucas", "Manon", "Inès", "Zoë", "José", "Benoît"),
        ("Martin", "Bernard", "Dubois", "Lefèvre", "Girard", "Müller", "García", "Faure"),
        ("Paris", "Lyon", "Marseille", "Toulouse"),
    ),
}
# Names written in their own script, family name first: (last, first, email local part).
NATIVE_NAMES = (
    ("山田", "太郎", "taro.yamada"),
    ("佐藤", "花子", "hanako.sato"),
    ("鈴木", "一郎", "ichiro.suzuki"),
    ("김", "민준", "minjun.kim"),
    ("Иванова", "Анна", "anna.ivanova"),
    ("Παπαδάκης", "Νίκος", "nikos.papadakis"),
)
COUNTRY_WEIGHTS = {"US": 50, "CA": 8, "GB": 22, "AU": 8, "FR": 12}
CURRENCY = {"US": "USD", "CA": "CAD", "GB": "GBP", "AU": "AUD", "FR": "EUR"}
US_AREA_CODES = ("415", "212", "312", "617", "206", "512", "303", "646", "510", "718")
CA_AREA_CODES = ("416", "514", "604", "403")
# Fiction ranges outside North America: (country code, leading groups, digits of the rest).
FICTION_RANGES = {
    "GB": (("44", "20 7946 0", 3), ("44", "161 496 0", 3), ("44", "7700 900", 3)),
    "AU": (("61", "2 5550", 4), ("61", "3 7010", 4)),
    "FR": (("33", "1 99 00", 4), ("33", "6 39 98", 4)),
}
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
TIERS = ("bronze", "silver", "gold", "platinum")
TIER_WEIGHTS = (50, 30, 15, 5)

# (name, SKU, unit price)
PRODUCTS = (
    ("Trail Shoe", "TS-100", 120.00),
    ("Rain Jacket", "RJ-200", 180.00),
    ("Wool Beanie", "WB-310", 24.00),
    ("Thermal Gloves", "TG-320", 35.00),
    ("Hiking Socks (3-pack)", "HS-330", 18.50),
    ("Down Vest", "DV-400", 140.00),
    ("Insulated Bottle", "IB-510", 29.95),
    ("Headlamp", "HL-520", 45.00),
    ("Daypack 24L", "DP-600", 89.00),
    ("Snow Boot", "SB-700", 165.00),
)
PAGES = ("Home", "Winter Sale", "Trail Running", "Store Locator", "My Account", "Returns")
SUPPORT_REASONS = (
    "Order status", "Delivery question", "Return request", "Size exchange",
    "Loyalty points", "Payment issue",
)

# (key, name, description); ids are derived from the key, stable across runs.
AUDIENCES = (
    ("high-value", "High value", "Lifetime value over 1,000"),
    ("churn-risk", "Churn risk", "Churn propensity of 0.7 or more"),
    ("winter-sale-2026-engaged", "Winter Sale 2026 engaged",
     "Opened, clicked or bought in the Winter Sale 2026 campaign"),
    ("lapsed-loyalty", "Lapsed loyalty members", "Loyalty members with no purchase in 6 months"),
    ("newsletter", "Newsletter subscribers", "Opted in to the weekly newsletter"),
)
