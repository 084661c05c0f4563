"""Takes the README screenshots from a running `make dev` in headless Chromium.

Usage: python3 docs/screenshots.py [http://127.0.0.1:8080]
Needs Debian's chromium and chromium-driver, and `pip install selenium`.
"""
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"
opts = webdriver.ChromeOptions()
opts.binary_location = "/usr/bin/chromium"
for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--window-size=430,1000"]:
    opts.add_argument(a)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
try:
    d.get(base + "/signin")
    d.save_screenshot("docs/signin.png")
    d.find_elements(By.CSS_SELECTOR, "form button")[0].click()  # Aiko
    d.get(base + "/plans")
    d.save_screenshot("docs/plans.png")
    d.find_element(By.ID, "buy-1").click()
    time.sleep(1)
    d.save_screenshot("docs/tickets.png")
    d.find_element(By.CSS_SELECTOR, ".ticket.ride a[href$='/1/pass']").click()
    time.sleep(1)
    # Present the pass to the metro gate, as a traveler would at the barrier.
    for b in d.find_elements(By.CSS_SELECTOR, ".gate-btn"):
        if b.get_attribute("data-gate").startswith("metro"):
            b.click()
    time.sleep(2)
    d.save_screenshot("docs/pass.png")
    subprocess.run(["cargo", "run", "-q", "-p", "kippu", "--", "feed-delay", "--url", base,
                    "--trip", "1", "--minutes", "20"], check=True)
    d.set_window_size(430, 1500)
    d.get(base + "/")
    d.save_screenshot("docs/home.png")
    d.set_window_size(1100, 900)
    d.get(base + "/operators/report")
    d.save_screenshot("docs/report.png")
    d.get(base + "/gates")
    d.save_screenshot("docs/gates.png")
finally:
    d.quit()
