// edgecnn serial protocol v1, microcontroller side: drive a steering servo and an ESC from `edgecnn steer
// --sink serial:///dev/ttyUSB0?baud=115200&config=car.toml`, with a watchdog that outputs neutral when the
// host stops talking (killed, crashed, cable pulled). edgecnn/runtime/serial_sink.py documents the protocol and
// holds the same logic in Python (WatchdogParser), which the tests run against a pseudo-terminal.
//
// Lines, host -> here, ASCII, ending in '\n'; pulses in integer microseconds:
//   N <steer_us> <throttle_us> <timeout_ms>*XX   neutral pulses and watchdog timeout; outputs neutral now
//   D <steer_us> <throttle_us>*XX                output these pulses now; restarts the watchdog
//   XX: two upper-case hex digits, XOR of every byte before '*'. A line that does not parse, fails its checksum or
//   holds a pulse outside 400..2600 us is ignored.
// Neutral is output at power-up, on every N line, and when no valid D line came for timeout_ms.
//
// Wiring (Arduino Uno/Nano): steering servo signal on pin 9, ESC signal on pin 10, grounds common.

#include <Servo.h>

const int STEER_PIN = 9;
const int THROTTLE_PIN = 10;
const unsigned long BAUD = 115200;
const int MIN_PULSE_US = 400;
const int MAX_PULSE_US = 2600;

Servo steer;
Servo throttle;
int neutralSteer = 1500;       // until the host's N line says otherwise
int neutralThrottle = 1500;
unsigned long timeoutMs = 500;
unsigned long lastDrive = 0;
bool driving = false;           // false: outputting neutral

char line[64];
byte len = 0;
bool overflow = false;

void outputNeutral() {
  throttle.writeMicroseconds(neutralThrottle);  // stop the motor first
  steer.writeMicroseconds(neutralSteer);
  driving = false;
}

byte hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return 255;
}

bool validPulse(long us) { return us >= MIN_PULSE_US && us <= MAX_PULSE_US; }

// Parses up to 3 unsigned integers after the command letter; returns how many, -1 on junk.
int parseNumbers(const char *p, const char *end, long *out, int maxCount) {
  int n = 0;
  while (p < end) {
    if (*p != ' ') return -1;
    while (p < end && *p == ' ') p++;
    if (p >= end) break;
    if (n == maxCount || *p < '0' || *p > '9') return -1;
    long v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') { v = v * 10 + (*p - '0'); p++; if (++digits > 6) return -1; }
    out[n++] = v;
  }
  return n;
}

void handleLine(char *s, byte n) {
  if (n > 0 && s[n - 1] == '\r') n--;
  char *star = (char *)memchr(s, '*', n);
  if (star == NULL || (s + n) - star != 3) return;
  byte sum = 0;
  for (char *p = s; p < star; p++) sum ^= (byte)*p;
  byte hi = hexDigit(star[1]), lo = hexDigit(star[2]);
  if (hi == 255 || lo == 255 || ((hi << 4) | lo) != sum) return;
  long v[3];
  int count = parseNumbers(s + 1, star, v, 3);
  if (s[0] == 'D' && count == 2 && validPulse(v[0]) && validPulse(v[1])) {
    throttle.writeMicroseconds((int)v[1]);
    steer.writeMicroseconds((int)v[0]);
    lastDrive = millis();
    driving = true;
  } else if (s[0] == 'N' && count == 3 && validPulse(v[0]) && validPulse(v[1]) && v[2] > 0) {
    neutralSteer = (int)v[0];
    neutralThrottle = (int)v[1];
    timeoutMs = (unsigned long)v[2];
    outputNeutral();
  }
}

void setup() {
  steer.attach(STEER_PIN);
  throttle.attach(THROTTLE_PIN);
  outputNeutral();
  Serial.begin(BAUD);
}

void loop() {
  while (Serial.available() > 0) {
    char c = (char)Serial.read();
    if (c == '\n') {
      if (!overflow) handleLine(line, len);
      len = 0;
      overflow = false;
    } else if (len < sizeof(line)) {
      line[len++] = c;
    } else {
      overflow = true;  // no valid line is this long: drop it
    }
  }
  // The watchdog: unsigned subtraction is correct across millis() wrap-around (every 49.7 days).
  if (driving && millis() - lastDrive > timeoutMs) outputNeutral();
}
