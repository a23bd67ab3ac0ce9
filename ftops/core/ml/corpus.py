"""A generated, generic tool-calling corpus for pre-training the embedded tiny base model.

The tools (weather, calendar, files, mail, travel, music, smart home ...) have nothing to do
with any enterprise a user brings: the base model learns only the *format* -- read the
offered tool list, pick the tool the request is about, copy names and values from the
request (or an earlier tool result) into ``<tool_call>`` JSON, ask for required values
that are missing, and answer in text when no tool fits. Tool and parameter names are drawn
per example from alias lists so the model has to read the signature instead of memorising
one spelling. Deterministic for a seed; no Django imports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from random import Random
from typing import Any

from ftops.core.ml.chat import render_assistant

ABSTAIN_TEXT = "None of the available tools can do that."

CITIES = ("Paris", "London", "Tokyo", "Berlin", "Madrid", "Rome", "Lisbon", "Oslo", "Cairo", "Lima", "Denver",
          "Boston", "Chicago", "Toronto", "Sydney", "Dublin", "Prague", "Vienna", "Nairobi", "Seoul", "Mumbai",
          "Austin", "Miami", "Phoenix", "Helsinki", "Warsaw", "Athens", "Zurich", "Quito", "Hanoi", "New York",
          "San Diego", "Los Angeles", "Buenos Aires", "Cape Town", "Hong Kong", "Mexico City", "Kuala Lumpur",
          "Rio de Janeiro", "Tel Aviv", "Las Vegas", "Salt Lake City", "Oakland", "Geneva", "Porto", "Bergen")
COUNTRIES = ("France", "Japan", "Kenya", "Brazil", "Canada", "Norway", "Peru", "India", "Spain", "Italy", "Chile",
             "Egypt", "Ghana", "Mexico", "Poland", "Vietnam", "Greece", "Ireland", "Iceland", "Portugal")
FIRST = ("Anna", "Ben", "Carla", "David", "Elena", "Frank", "Gina", "Hugo", "Iris", "Jonas", "Kira", "Liam",
         "Mina", "Nils", "Olivia", "Pablo", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Will", "Xena",
         "Yara", "Zack", "Alma", "Bruno", "Cleo", "Dario", "Eve", "Farah", "Gus", "Hedda", "Ike", "Jade")
LAST = ("Lee", "Garcia", "Miller", "Khan", "Novak", "Owens", "Park", "Quinto", "Reyes", "Stone", "Turner",
        "Ueda", "Vance", "Wolf", "Young", "Zhou", "Adams", "Baker", "Cruz", "Dunn", "Ellis", "Fox", "Hale")
DOMAINS = ("example.com", "mail.test", "inbox.example.org", "work.example.net", "home.test")
WORDS = ("budget", "launch", "review", "design", "garden", "holiday", "party", "report", "lunch", "draft",
         "summary", "roadmap", "workshop", "picnic", "birthday", "dinner", "meeting", "sprint", "photo", "trip",
         "notes", "plan", "invite", "weekly", "yoga", "book", "club", "team", "family", "school", "project",
         "concert", "recipe", "training", "interview", "update", "homework", "travel", "cleanup", "research")
LANGUAGES = ("French", "Spanish", "German", "Japanese", "Italian", "Korean", "Dutch", "Swedish", "Hindi",
             "Arabic", "Polish", "Turkish", "Greek", "Czech", "Finnish")
GENRES = ("jazz", "rock", "pop", "classical", "hip hop", "blues", "reggae", "folk", "metal", "soul", "techno")
ARTISTS = ("Nina Vale", "The Lanterns", "Blue Harbor", "Kofi Mensa", "Echo Park", "Ruby Stone", "Arlo Finch",
           "Silver Pines", "Mara Lune", "The Night Owls")
CUISINES = ("Italian", "Thai", "Mexican", "Indian", "Japanese", "Greek", "Korean", "Ethiopian", "Vegan",
            "French", "Lebanese")
ROOMS = ("kitchen", "bedroom", "living room", "office", "garage", "hallway", "bathroom", "basement", "patio")
COLORS = ("red", "blue", "green", "warm white", "purple", "orange", "yellow", "pink", "cool white")
SPORTS_TEAMS = ("Rovers", "Falcons", "Tigers", "Comets", "Harbor FC", "Lakers", "Giants", "Wolves")
UNITS_TEMP = ("celsius", "fahrenheit")
UNITS_LEN = ("km", "miles", "meters", "feet", "inches", "cm")
SYMBOLS = ("AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOG", "IBM", "ORCL", "SAP", "INTC")
FILE_EXT = ("pdf", "txt", "csv", "docx", "png", "md", "xlsx", "jpg")
STATIONS = ("Central", "North Gate", "Harbor", "Old Town", "Airport", "University", "Riverside", "Market")


def _date(r: Random) -> str:
    return f"20{r.randint(24, 27)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}"


def _time(r: Random) -> str:
    return f"{r.randint(6, 22):02d}:{r.choice(('00', '15', '30', '45'))}"


def _code(r: Random) -> str:
    letters = "".join(r.choice("ABCDEFGHJKMNPRSTUVWXYZ") for _ in range(r.randint(1, 3)))
    sep = r.choice(("-", "", "_", "-"))
    return f"{letters}{sep}{r.randint(10, 999999)}"


def _title(r: Random) -> str:
    return " ".join(r.sample(WORDS, r.randint(1, 3))).capitalize()


def _file(r: Random) -> str:
    return f"{r.choice(WORDS)}_{r.randint(1, 99)}.{r.choice(FILE_EXT)}"


def _email(r: Random) -> str:
    return f"{r.choice(FIRST).lower()}{r.choice(('.', '_', ''))}{r.choice(LAST).lower()}@{r.choice(DOMAINS)}"


# kind -> value generator; each returns the JSON value (numbers stay numbers).
KINDS: dict[str, Any] = {
    "city": lambda r: r.choice(CITIES),
    "country": lambda r: r.choice(COUNTRIES),
    "person": lambda r: f"{r.choice(FIRST)} {r.choice(LAST)}" if r.random() < 0.6 else r.choice(FIRST),
    "email": _email,
    "date": _date,
    "time": _time,
    "small": lambda r: r.randint(1, 9),
    "count": lambda r: r.randint(2, 60),
    "big": lambda r: r.randint(100, 99999),
    "decimal": lambda r: round(r.uniform(0.5, 999), r.choice((1, 2))),
    "minutes": lambda r: r.choice((5, 10, 15, 20, 25, 30, 45, 60, 90)),
    "percent": lambda r: r.choice((10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 100)),
    "code": _code,
    "title": _title,
    "file": _file,
    "folder": lambda r: "/" + "/".join(r.sample(WORDS, r.randint(1, 2))),
    "language": lambda r: r.choice(LANGUAGES),
    "genre": lambda r: r.choice(GENRES),
    "artist": lambda r: r.choice(ARTISTS),
    "cuisine": lambda r: r.choice(CUISINES),
    "room": lambda r: r.choice(ROOMS),
    "color": lambda r: r.choice(COLORS),
    "team": lambda r: r.choice(SPORTS_TEAMS),
    "symbol": lambda r: r.choice(SYMBOLS),
    "station": lambda r: r.choice(STATIONS),
    "word": lambda r: r.choice(WORDS),
    "phrase": lambda r: r.choice(("good morning", "where is the station", "thank you very much", "see you soon",
                                  "how much does it cost", "I love this song", "happy birthday", "the bill please")),
    "expr": lambda r: f"{r.randint(2, 999)} {r.choice('+-*/')} {r.randint(2, 99)}",
}
QUOTED_KINDS = {"title", "phrase", "expr"}


@dataclass(frozen=True)
class Slot:
    kind: str
    names: tuple[str, ...]  # parameter name aliases
    phrases: tuple[str, ...]  # how a request mentions the value; "{v}" is the value
    required: bool = True
    enum: tuple[str, ...] = ()  # enum slots take their values from here


@dataclass(frozen=True)
class ToolSpec:
    names: tuple[str, ...]
    description: str
    actions: tuple[str, ...]
    slots: tuple[Slot, ...] = ()
    returns: tuple[str, str, tuple[str, ...]] | None = None  # (result field, kind, consumer tools) for chains


def S(kind: str, names: str, phrases: str, required: bool = True, enum: str = "") -> Slot:
    return Slot(kind, tuple(names.split()), tuple(p.strip() for p in phrases.split("|")), required,
                tuple(e.strip() for e in enum.split(",")) if enum else ())


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(("get_weather", "weather_now", "current_weather"), "Get the current weather for a city.",
             ("what's the weather", "tell me the weather", "how is the weather", "check the weather",
              "is it raining", "weather report"),
             (S("city", "city location place", "in {v}|for {v}|at {v}"),
              S("enum", "unit units scale", "in {v}|using {v}", False, "celsius,fahrenheit"))),
    ToolSpec(("get_forecast", "weather_forecast", "forecast_days"), "Get the weather forecast for the next days.",
             ("what's the forecast", "give me the forecast", "show the forecast", "will it rain"),
             (S("city", "city location", "in {v}|for {v}"), S("small", "days num_days", "for the next {v} days|"
                                                               "{v} days ahead|over {v} days", False))),
    ToolSpec(("create_event", "add_calendar_event", "schedule_event"), "Create a calendar event.",
             ("create an event", "schedule", "add to my calendar", "put on my calendar", "set up an event",
              "book a slot"),
             (S("title", "title name summary", 'called "{v}"|titled "{v}"|named "{v}"|"{v}"'),
              S("date", "date day", "on {v}|for {v}"), S("time", "time start_time start", "at {v}|starting {v}"),
              S("minutes", "duration duration_minutes length", "for {v} minutes|lasting {v} minutes", False))),
    ToolSpec(("list_events", "get_events", "calendar_list"), "List calendar events on a day.",
             ("what's on my calendar", "list my events", "show my schedule", "what do I have", "any meetings"),
             (S("date", "date day", "on {v}|for {v}"),)),
    ToolSpec(("delete_event", "cancel_event", "remove_event"), "Delete a calendar event by its id.",
             ("delete the event", "cancel event", "remove the event", "drop event"),
             (S("code", "event_id id", "{v}|with id {v}|number {v}"),)),
    ToolSpec(("calculate", "evaluate_expression", "compute"), "Evaluate a math expression.",
             ("calculate", "compute", "what is", "work out", "evaluate", "solve"),
             (S("expr", "expression expr formula", '"{v}"|{v}'),)),
    ToolSpec(("convert_units", "unit_convert", "convert_length"), "Convert a length between units.",
             ("convert", "how many is", "change", "turn"),
             (S("decimal", "value amount quantity", "{v}"), S("enum", "from_unit source_unit from", "from {v}|{v}",
                                                                True, ",".join(UNITS_LEN)),
              S("enum", "to_unit target_unit to", "to {v}|into {v}|in {v}", True, ",".join(UNITS_LEN)))),
    ToolSpec(("percentage_of", "percent_calc", "compute_percent"), "Compute a percentage of a number.",
             ("what is", "calculate", "compute", "figure out"),
             (S("percent", "percent pct rate", "{v} percent of|{v}% of"), S("big", "number value total", "{v}"))),
    ToolSpec(("search_files", "find_files", "file_search"), "Search files by name.",
             ("search my files", "find files", "look for files", "search for documents", "locate files"),
             (S("word", "query name_contains keyword term", "matching {v}|named {v}|about {v}|with {v} in the name"),
              S("folder", "folder path directory", "in {v}|under {v}|inside {v}", False)),
             returns=("file_id", "code", ("share_file",))),
    ToolSpec(("read_file", "open_file", "get_file_contents"), "Read a file.",
             ("open", "read", "show me", "display the contents of", "print"),
             (S("file", "filename file name path", "{v}|the file {v}|file {v}"),)),
    ToolSpec(("share_file", "send_file", "file_share"), "Share a file with someone by email.",
             ("share", "send", "give access to"),
             (S("code", "file_id document_id id", "file {v}|document {v}|{v}"),
              S("email", "email recipient to", "with {v}|to {v}"),
              S("enum", "permission access role", "as {v}|with {v} access", False, "view,comment,edit"))),
    ToolSpec(("delete_file", "remove_file", "trash_file"), "Delete a file.",
             ("delete", "remove", "trash", "get rid of"),
             (S("file", "filename path file", "{v}|the file {v}|file {v}"),)),
    ToolSpec(("send_email", "email_send", "compose_email"), "Send an email.",
             ("send an email", "email", "write an email", "mail", "shoot an email"),
             (S("email", "to recipient address", "to {v}"),
              S("title", "subject title topic", 'about "{v}"|with subject "{v}"|titled "{v}"'),
              S("phrase", "body message text", 'saying "{v}"|that says "{v}"|with the text "{v}"', False))),
    ToolSpec(("find_contact", "lookup_contact", "search_contacts"), "Find a contact by name.",
             ("find the contact", "look up", "search contacts for", "who is", "find"),
             (S("person", "name query contact_name", "{v}|named {v}|called {v}"),),
             returns=("email", "email", ("send_email", "share_file"))),
    ToolSpec(("search_flights", "find_flights", "flight_search"), "Search flights between two cities.",
             ("find flights", "search flights", "look for a flight", "any flights", "show me flights"),
             (S("city", "origin from_city departure source", "from {v}|leaving {v}|out of {v}"),
              S("city", "destination to_city arrival target", "to {v}|going to {v}|into {v}"),
              S("date", "date departure_date day", "on {v}|for {v}", False)),
             returns=("flight_id", "code", ("book_flight",))),
    ToolSpec(("book_flight", "reserve_flight", "flight_booking"), "Book a flight by its id.",
             ("book flight", "reserve flight", "book me on flight", "get me a seat on"),
             (S("code", "flight_id flight id", "{v}|number {v}"),
              S("small", "passengers seats travelers", "for {v} passengers|for {v} people|{v} seats", False))),
    ToolSpec(("book_hotel", "reserve_hotel", "hotel_booking"), "Book a hotel room.",
             ("book a hotel", "reserve a room", "find me a room", "get a hotel"),
             (S("city", "city location destination", "in {v}|at {v}"), S("date", "check_in arrival from_date",
                                                                            "from {v}|checking in {v}|on {v}"),
              S("small", "nights stay_nights", "for {v} nights|{v} nights"),
              S("small", "guests people adults", "for {v} guests|{v} adults", False))),
    ToolSpec(("get_train_times", "train_schedule", "next_trains"), "Get train departures from a station.",
             ("when is the next train", "train times", "show departures", "trains leaving"),
             (S("station", "station stop from_station", "from {v}|at {v}|leaving {v}"),
              S("time", "after time after_time", "after {v}|from {v}", False))),
    ToolSpec(("call_taxi", "request_ride", "book_taxi"), "Request a taxi ride.",
             ("call a taxi", "get me a cab", "request a ride", "order a taxi", "book a car"),
             (S("city", "pickup from pickup_location", "from {v}|pick me up in {v}|pickup at {v}"),
              S("city", "dropoff to destination", "to {v}|going to {v}|drop me in {v}"),
              S("enum", "car_type vehicle class", "{v}|a {v} car", False, "standard,xl,luxury"))),
    ToolSpec(("play_music", "play_song", "start_playback"), "Play music.",
             ("play", "put on", "start playing", "queue up", "I want to hear"),
             (S("genre", "genre style", "some {v}|{v} music|{v}"), S("artist", "artist by band", "by {v}", False))),
    ToolSpec(("set_volume", "volume_set", "change_volume"), "Set the speaker volume.",
             ("set the volume", "turn the volume", "change the volume", "make the volume"),
             (S("percent", "level volume percent", "to {v}|at {v} percent|to {v}%"),)),
    ToolSpec(("create_playlist", "new_playlist", "make_playlist"), "Create a playlist.",
             ("create a playlist", "make a playlist", "start a new playlist"),
             (S("title", "name title", 'called "{v}"|named "{v}"'),
              S("enum", "visibility privacy", "{v}|make it {v}", False, "public,private"))),
    ToolSpec(("add_todo", "create_task", "new_todo"), "Add an item to the to-do list.",
             ("add a todo", "remind me to", "add a task", "put on my list", "note to"),
             (S("phrase", "text task item title", '"{v}"|{v}'), S("date", "due due_date deadline", "by {v}|due {v}",
                                                                   False),
              S("enum", "priority level", "with {v} priority|{v} priority", False, "low,medium,high"))),
    ToolSpec(("set_timer", "start_timer", "timer_start"), "Start a countdown timer.",
             ("set a timer", "start a timer", "time", "count down"),
             (S("minutes", "minutes duration length", "for {v} minutes|{v} minutes"),
              S("word", "label name title", "called {v}|for the {v}|labelled {v}", False))),
    ToolSpec(("set_alarm", "create_alarm", "alarm_set"), "Set an alarm.",
             ("set an alarm", "wake me up", "alarm", "ring"),
             (S("time", "time at alarm_time", "at {v}|for {v}"),
              S("enum", "repeat recurrence", "{v}|repeating {v}", False, "once,daily,weekdays"))),
    ToolSpec(("translate_text", "translate", "text_translate"), "Translate text into another language.",
             ("translate", "how do you say", "say", "put"),
             (S("phrase", "text source_text phrase", '"{v}"'), S("language", "target_language to language lang",
                                                                  "into {v}|in {v}|to {v}"))),
    ToolSpec(("get_stock_price", "stock_quote", "quote_lookup"), "Get the latest stock price.",
             ("what is the price of", "get a quote for", "how is", "stock price of", "check"),
             (S("symbol", "symbol ticker", "{v}|ticker {v}|{v} shares"),)),
    ToolSpec(("find_recipe", "search_recipes", "recipe_lookup"), "Find recipes.",
             ("find a recipe", "how do I cook", "show recipes", "what can I make"),
             (S("word", "ingredient query dish", "with {v}|for {v}|using {v}"),
              S("small", "servings portions", "for {v} people|{v} servings", False))),
    ToolSpec(("log_workout", "record_exercise", "add_workout"), "Log a workout.",
             ("log a workout", "record my", "track my", "add a workout"),
             (S("enum", "activity sport type", "{v}|a {v} session", True, "running,cycling,swimming,yoga,rowing"),
              S("minutes", "minutes duration", "of {v} minutes|for {v} minutes"))),
    ToolSpec(("set_thermostat", "thermostat_set", "set_temperature"), "Set the thermostat temperature.",
             ("set the thermostat", "set the temperature", "heat", "make it"),
             (S("count", "temperature degrees target", "to {v} degrees|at {v}|to {v}"),
              S("room", "room zone area", "in the {v}|for the {v}", False))),
    ToolSpec(("turn_on_lights", "lights_on", "switch_lights"), "Turn on the lights in a room.",
             ("turn on the lights", "switch on the light", "lights on", "light up"),
             (S("room", "room area zone", "in the {v}|{v}"), S("color", "color colour", "in {v}|to {v}", False),
              S("percent", "brightness level", "at {v}%|at {v} percent", False))),
    ToolSpec(("lock_door", "door_lock", "secure_door"), "Lock a door.",
             ("lock the", "lock", "secure the"),
             (S("enum", "door which location", "{v} door|{v}", True, "front,back,garage,side"),)),
    ToolSpec(("find_restaurant", "search_restaurants", "restaurant_search"), "Find restaurants.",
             ("find a restaurant", "where can I eat", "recommend a place", "search restaurants"),
             (S("cuisine", "cuisine food type", "{v}|serving {v} food|with {v} food"),
              S("city", "city location near", "in {v}|near {v}")),
             returns=("restaurant_id", "code", ("reserve_table",))),
    ToolSpec(("reserve_table", "book_table", "table_reservation"), "Reserve a restaurant table.",
             ("reserve a table", "book a table", "get a table", "make a reservation"),
             (S("code", "restaurant_id venue_id id", "at {v}|at restaurant {v}|{v}"),
              S("small", "people party_size guests", "for {v}|for {v} people"),
              S("time", "time at", "at {v}"))),
    ToolSpec(("get_directions", "route_to", "navigate"), "Get directions between two places.",
             ("directions", "how do I get", "route", "navigate", "show the way"),
             (S("city", "origin from start", "from {v}"), S("city", "destination to end", "to {v}"),
              S("enum", "mode travel_mode by", "by {v}|{v}", False, "driving,walking,transit,cycling"))),
    ToolSpec(("get_news", "news_headlines", "top_stories"), "Get news headlines.",
             ("what's the news", "show headlines", "latest news", "news"),
             (S("word", "topic category about", "about {v}|on {v}"), S("country", "country region", "in {v}|from {v}",
                                                                        False))),
    ToolSpec(("get_score", "match_score", "team_result"), "Get the latest score of a team.",
             ("what's the score of", "how did", "did", "latest result for"),
             (S("team", "team club", "the {v}|{v}"),)),
    ToolSpec(("define_word", "dictionary_lookup", "word_meaning"), "Look up the meaning of a word.",
             ("define", "what does", "meaning of", "look up"),
             (S("word", "word term", "{v}|the word {v}"),)),
    ToolSpec(("currency_rate", "exchange_rate", "fx_rate"), "Get an exchange rate.",
             ("exchange rate", "how much is", "rate for", "convert"),
             (S("enum", "base from_currency source", "from {v}|{v}", True, "USD,EUR,JPY,GBP,CHF,INR,BRL"),
              S("enum", "quote to_currency target", "to {v}|in {v}", True, "USD,EUR,JPY,GBP,CHF,INR,BRL"))),
    ToolSpec(("open_issue", "create_ticket", "file_bug"), "Open an issue in a project tracker.",
             ("open an issue", "file a bug", "create a ticket", "report a problem"),
             (S("word", "project repo board", "in {v}|for {v}|on the {v} board"),
              S("title", "title summary headline", 'titled "{v}"|called "{v}"|: "{v}"'),
              S("enum", "severity priority", "{v} severity|marked {v}", False, "low,normal,critical"))),
    ToolSpec(("get_country_info", "country_facts", "lookup_country"), "Get facts about a country.",
             ("tell me about", "facts about", "what is the capital of", "info on"),
             (S("country", "country name nation", "{v}"),)),
    ToolSpec(("set_reminder", "remind_me", "create_reminder"), "Set a reminder.",
             ("remind me", "set a reminder", "don't let me forget"),
             (S("phrase", "message text note", 'to "{v}"|about "{v}"|"{v}"'), S("date", "date day on", "on {v}"),
              S("time", "time at", "at {v}", False))),
    ToolSpec(("book_appointment", "make_appointment", "schedule_visit"), "Book an appointment with a person.",
             ("book an appointment", "schedule a visit", "set up a meeting", "see"),
             (S("person", "with_person person name", "with {v}"), S("date", "date day", "on {v}"),
              S("time", "time slot", "at {v}"))),
    ToolSpec(("rename_file", "file_rename", "move_file"), "Rename a file.",
             ("rename", "change the name of", "call"),
             (S("file", "old_name source filename", "{v}|file {v}"), S("file", "new_name target", "to {v}|as {v}"))),
    ToolSpec(("count_words", "word_count", "text_stats"), "Count the words in a text.",
             ("count the words in", "how many words are in", "word count of"),
             (S("phrase", "text input", '"{v}"'),)),
    ToolSpec(("get_time", "world_clock", "time_in"), "Get the local time in a city.",
             ("what time is it", "current time", "local time", "time"),
             (S("city", "city location timezone", "in {v}|for {v}"),)),
    ToolSpec(("random_number", "roll_number", "pick_number"), "Pick a random number in a range.",
             ("pick a random number", "give me a number", "random number", "roll"),
             (S("small", "min low minimum", "from {v}|between {v}"), S("big", "max high maximum", "to {v}|and {v}"))),
)

PREFIXES = ("", "", "", "Please ", "Can you ", "Could you ", "I want to ", "Hey, ", "I need to ", "Quick: ",
            "I'd like to ", "Hi! ", "Would you ", "Go ahead and ")
SUFFIXES = ("", "", "?", ".", " please", " thanks", ", thank you", "!", " asap")
ASK_TEMPLATES = ("Could you tell me the {f}?", "I need the {f} to do that.", "Which {f} should I use?",
                 "Please give me the {f}.", "What is the {f}?")


@dataclass
class CorpusExample:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    target: str
    behavior: str


@dataclass
class _Instance:
    spec: ToolSpec
    name: str
    params: list[tuple[Slot, str]]  # (slot, chosen parameter name)

    def schema(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for slot, pname in self.params:
            props[pname] = _param_schema(slot)
        required = [p for s, p in self.params if s.required]
        return {"type": "function", "function": {
            "name": self.name, "description": self.spec.description,
            "parameters": {"type": "object", "properties": props, "required": required}}}


def _param_schema(slot: Slot) -> dict[str, Any]:
    if slot.enum:
        return {"type": "string", "enum": list(slot.enum)}
    sample = KINDS[slot.kind](Random(0))
    if isinstance(sample, bool):
        return {"type": "boolean"}
    if isinstance(sample, int):
        return {"type": "integer"}
    if isinstance(sample, float):
        return {"type": "number"}
    return {"type": "string"}


def _instance(r: Random, spec: ToolSpec) -> _Instance:
    params = []
    used: set[str] = set()
    for slot in spec.slots:
        choices = [n for n in slot.names if n not in used] or [f"{slot.names[0]}_2"]
        name = r.choice(choices)
        used.add(name)
        params.append((slot, name))
    return _Instance(spec, r.choice(spec.names), params)


def _value(r: Random, slot: Slot) -> Any:
    return r.choice(slot.enum) if slot.enum else KINDS[slot.kind](r)


def _phrase(r: Random, slot: Slot, value: Any) -> str:
    return r.choice(slot.phrases).replace("{v}", str(value))


def _request(r: Random, inst: _Instance, *, drop: set[str] | None = None,
             fixed: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """(request text without prefix/suffix, arguments it states)."""
    drop = drop or set()
    args: dict[str, Any] = {}
    parts = []
    for slot, pname in inst.params:
        if pname in drop:
            continue
        if fixed and pname in fixed:
            args[pname] = fixed[pname]
            continue
        if not slot.required and r.random() < 0.5:
            continue
        value = _value(r, slot)
        args[pname] = value
        parts.append(_phrase(r, slot, value))
    r.shuffle(parts) if r.random() < 0.3 else None
    action = r.choice(inst.spec.actions)
    return " ".join([action, *parts]).strip(), args


def _wrap(r: Random, text: str) -> str:
    prefix = r.choice(PREFIXES)
    body = text if prefix else text[:1].upper() + text[1:]
    return f"{prefix}{body}{r.choice(SUFFIXES)}"


def _toolset(r: Random, targets: list[ToolSpec], *, exclude: list[ToolSpec] | None = None,
             size: int | None = None) -> tuple[list[_Instance], dict[int, _Instance]]:
    banned = {id(t) for t in (exclude or [])} | {id(t) for t in targets}
    # Same-domain neighbours (adjacent in TOOLS) make choosing harder than random picks.
    pool = [t for t in TOOLS if id(t) not in banned]
    n = size if size is not None else r.choice((0, 0, 1, 1, 1, 2, 2, 3, 4))
    distractors = r.sample(pool, min(n, len(pool)))
    chosen = {id(t): _instance(r, t) for t in targets}
    instances = list(chosen.values()) + [_instance(r, t) for t in distractors]
    r.shuffle(instances)
    return instances, {i: chosen[id(t)] for i, t in enumerate(targets)}


def _call_example(r: Random) -> CorpusExample:
    spec = r.choice(TOOLS)
    tools, chosen = _toolset(r, [spec])
    inst = chosen[0]
    text, args = _request(r, inst)
    return CorpusExample([{"role": "user", "content": _wrap(r, text)}], [t.schema() for t in tools],
                         render_assistant([{"name": inst.name, "arguments": args}]), "call")


def _parallel_example(r: Random) -> CorpusExample:
    same = r.random() < 0.4
    first = r.choice(TOOLS)
    second = first if same else r.choice([t for t in TOOLS if t is not first])
    tools, chosen = _toolset(r, [first] if same else [first, second], size=r.randint(0, 3))
    a = chosen[0]
    b = chosen[0] if same else chosen[1]
    text_a, args_a = _request(r, a)
    text_b, args_b = _request(r, b)
    joiner = r.choice((" and ", ", and also ", ". Also ", " and then "))
    return CorpusExample([{"role": "user", "content": _wrap(r, text_a + joiner + text_b)}],
                         [t.schema() for t in tools],
                         render_assistant([{"name": a.name, "arguments": args_a},
                                           {"name": b.name, "arguments": args_b}]), "call")


def _ask_example(r: Random) -> CorpusExample | None:
    spec = r.choice([t for t in TOOLS if any(s.required for s in t.slots)])
    tools, chosen = _toolset(r, [spec])
    inst = chosen[0]
    required = [p for s, p in inst.params if s.required]
    missing = set(r.sample(required, r.randint(1, min(2, len(required)))))
    text, _ = _request(r, inst, drop=missing)
    fields = " and ".join(p for p in required if p in missing)
    return CorpusExample([{"role": "user", "content": _wrap(r, text)}], [t.schema() for t in tools],
                         r.choice(ASK_TEMPLATES).format(f=fields), "ask_for_details")


def _abstain_example(r: Random) -> CorpusExample:
    spec = r.choice(TOOLS)
    tools, _ = _toolset(r, [], exclude=[spec], size=r.randint(1, 5))
    text, _ = _request(r, _instance(r, spec))
    return CorpusExample([{"role": "user", "content": _wrap(r, text)}], [t.schema() for t in tools],
                         ABSTAIN_TEXT, "abstain")


def _chain(r: Random) -> tuple[ToolSpec, ToolSpec]:
    lookup = r.choice([t for t in TOOLS if t.returns])
    names = lookup.returns[2]  # type: ignore[index]
    consumer = r.choice([t for t in TOOLS if t.names[0] in names])
    return lookup, consumer


def _chain_example(r: Random) -> CorpusExample:
    """A lookup whose result feeds the next call; the model sees the first call and its result."""
    lookup, consumer = _chain(r)
    field, kind, _ = lookup.returns  # type: ignore[misc]
    tools, chosen = _toolset(r, [lookup, consumer], size=r.randint(0, 3))
    first, second = chosen[0], chosen[1]
    first_text, first_args = _request(r, first)
    slot_name = next(p for s, p in second.params if s.kind == kind)
    result_value = KINDS[kind](r)
    second_text, second_args = _request(r, second, fixed={slot_name: result_value})
    query = _wrap(r, first_text + r.choice((" and then ", ", then ", " and ")) + second_text)
    result = {field: result_value}
    if r.random() < 0.5:
        result["status"] = r.choice(("ok", "found", "active"))
    history: list[dict[str, Any]] = [
        {"role": "user", "content": query},
        {"role": "assistant", "content": render_assistant([{"name": first.name, "arguments": first_args}])},
        {"role": "tool", "content": result},
    ]
    return CorpusExample(history, [t.schema() for t in tools],
                         render_assistant([{"name": second.name, "arguments": second_args}]), "sequence")


def _chain_first_example(r: Random) -> CorpusExample:
    lookup, consumer = _chain(r)
    kind = lookup.returns[1]  # type: ignore[index]
    tools, chosen = _toolset(r, [lookup, consumer], size=r.randint(0, 3))
    first, second = chosen[0], chosen[1]
    first_text, first_args = _request(r, first)
    slot_name = next(p for s, p in second.params if s.kind == kind)
    second_text, _ = _request(r, second, drop={slot_name})
    query = _wrap(r, first_text + r.choice((" and then ", ", then ", " and ")) + second_text)
    return CorpusExample([{"role": "user", "content": query}], [t.schema() for t in tools],
                         render_assistant([{"name": first.name, "arguments": first_args}]), "sequence")


ECHO_KINDS = ("code", "email", "date", "time", "city", "person", "big", "decimal", "file", "title", "word", "count")


def _echo_example(r: Random) -> CorpusExample:
    """Copy drill: repeat values verbatim. Short, dense in copying, so copying is learnt early."""
    values = [str(KINDS[r.choice(ECHO_KINDS)](r)) for _ in range(r.randint(1, 4))]
    lead = r.choice(("Repeat:", "Say back:", "Copy this:", "Echo", "Write exactly:"))
    return CorpusExample([{"role": "user", "content": f"{lead} {' '.join(values)}"}], [], " ".join(values), "echo")


def _fill_example(r: Random) -> CorpusExample:
    """Extraction drill: pick named values out of a request into a JSON object."""
    spec = r.choice([t for t in TOOLS if t.slots])
    inst = _instance(r, spec)
    text, args = _request(r, inst)
    if not args:
        return _echo_example(r)
    keys = ", ".join(sorted(args))
    return CorpusExample([{"role": "user", "content": f"Fill {keys} from: {_wrap(r, text)}"}], [],
                         json.dumps(args, ensure_ascii=False, separators=(",", ":"), sort_keys=True), "fill")


MIX = ((_call_example, 0.46), (_parallel_example, 0.06), (_ask_example, 0.07), (_abstain_example, 0.07),
       (_chain_example, 0.08), (_chain_first_example, 0.04), (_echo_example, 0.1), (_fill_example, 0.12))


def generate_drills(n: int, *, seed: int = 0) -> list[CorpusExample]:
    """``n`` copy drills (60% repeat, 40% fill-JSON), for the first training phase."""
    r = Random(seed)
    return [_echo_example(r) if r.random() < 0.6 else _fill_example(r) for _ in range(n)]


def generate_corpus(n: int, *, seed: int = 0) -> list[CorpusExample]:
    """``n`` generic tool-calling examples (deterministic for ``seed``)."""
    r = Random(seed)
    makers = [m for m, _ in MIX]
    weights = [w for _, w in MIX]
    out: list[CorpusExample] = []
    while len(out) < n:
        example = r.choices(makers, weights)[0](r)
        if example is not None:
            out.append(example)
    return out
