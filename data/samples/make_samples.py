"""Write reviews.csv and reviews.parquet from the hand-written rows below.

Every review text in this file was written by hand. Nothing is generated:
the only computation is a fixed-seed shuffle of the row order (so that
review_id does not simply run category by category) and the two writers.

Row format: (category, product, rating, language, review, tags)
tags (not written to the output, only used for the README counts):
  s = sarcasm, m = star rating disagrees with the text,
  e = contains emoji, q = contains double quotes and/or newlines
Exact duplicate (spam) texts are the constants DUP_* below.

Run from the repo root:  python data/samples/make_samples.py
"""
from pathlib import Path
import random

import pandas as pd

OUT = Path(__file__).resolve().parent

DUP_POSITIVE = "Great product!!! Fast shipping, exactly as described. Highly recommend to everyone, five stars!!!"
DUP_FAMILY = "Very good quality, my family loves it. Will buy again from this seller."
DUP_NEGATIVE = "Do not buy. Cheap garbage that broke immediately. Seller ignores messages."

HP_OVER = "Sonara Q30 Wireless Over-Ear Headphones"
HP_BUDS = "Pulse Buds Pro True Wireless Earbuds"
HP_GAME = "Kestrel K2 Gaming Headset"
HP_SPORT = "Vanta Sport Neckband Earphones"
HP_KIDS = "Lumen Kids Volume-Limited Headphones"

K_SKILLET = "Ferro 12-inch Cast Iron Skillet"
K_KETTLE = "Brisa 1.7L Electric Kettle"
K_GARLIC = "QuickPress Stainless Garlic Press"
K_COFFEE = "Nordhaus 8-Cup Programmable Coffee Maker"
K_BOARD = "Mesa Bamboo Cutting Board Set (3 pcs)"
K_FRYER = "Kora 5.5qt Air Fryer"

B_SALT = "The Salt Road (paperback)"
B_PY = "Practical Python for Data Analysis, 3rd Edition"
B_LIGHT = "Midnight at the Lighthouse (hardcover)"
B_GARDEN = "The Quiet Garden: A Year of Slow Gardening"
B_BEAR = "Tiny Bear Goes to Sleep (board book)"
B_ATLAS = "Atlas of Forgotten Islands"

T_BRICK = "BrickVille Fire Station 500-Piece Building Set"
T_RC = "Zoomer 360 RC Stunt Car"
T_SLOTH = "Snuggle Sloth Plush Toy (40 cm)"
T_MARBLE = "Marble Run Deluxe 120-Piece Set"
T_VOLCANO = "Junior Science Volcano Kit"
T_STACK = "Wooden Rainbow Stacker"

P_CASE = "ArmorShell MagSafe Case for iPhone 15"
P_CHARGER = "VoltMax 20W USB-C Fast Charger"
P_GLASS = "ClearGuard Tempered Glass Screen Protector (2-pack)"
P_MOUNT = "GripMount Magnetic Car Vent Phone Holder"
P_CABLE = "BraidLine USB-C to USB-C Cable 2m"
P_BANK = "PowerCore 10000mAh Power Bank"

S_RUN = "Stride Runner 3 Running Shoes"
S_HIKE = "Alpine Trek Waterproof Hiking Boots"
S_SLIP = "CloudStep Memory Foam Slippers"
S_CHELSEA = "Harbor Leather Chelsea Boots"
S_CANVAS = "Kix Canvas Low-Top Sneakers"
S_KIDS = "FlexFit Kids Velcro Trainers"

O_DESK = "ErgoLift Electric Standing Desk 140x70"
O_CHAIR = "Orbit Mesh Ergonomic Office Chair"
O_LAMP = "Lumio LED Desk Lamp with USB Port"
O_KEYS = "KeyWave Wireless Keyboard and Mouse Combo"
O_RISER = "DeskMate Monitor Riser with Drawer"
O_CAM = "Clarity 1080p USB Webcam"

X_TENT = "TrailLite 2-Person Backpacking Tent"
X_PACK = "Summit 20L Hiking Daypack"
X_STOVE = "Ember Portable Camping Stove"
X_BOTTLE = "HydroFlow 1L Insulated Water Bottle"
X_SOLAR = "Solaris 60W Foldable Solar Panel"
X_HAMMOCK = "Nomad Camping Hammock with Tree Straps"

BE_SERUM = "Dewdrop Hyaluronic Acid Serum 30ml"
BE_LIP = "Velvet Matte Liquid Lipstick"
BE_DRYER = "SilkWave Ionic Hair Dryer"
BE_CREAM = "PureLeaf Vitamin C Face Cream 50ml"
BE_MASCARA = "Lash Lift Volumizing Mascara"
BE_SPF = "SunVeil SPF 50 Daily Sunscreen"

PE_BED = "PawNest Orthopedic Dog Bed (Large)"
PE_TREE = "WhiskerWorld Cat Tree 150cm"
PE_BALL = "FetchMaster Automatic Ball Launcher"
PE_FOUNT = "AquaPaw Pet Water Fountain 2.5L"
PE_CHEW = "TuffChew Rubber Chew Toy"
PE_LITTER = "Clumping Tofu Cat Litter 6L"

ROWS = [
    # ---------------------------------------------------------------- headphones
    ("headphones", HP_OVER, 5, "en", "Noise cancelling is genuinely impressive for the price. I use these on the train every day and the announcements just fade into a hum. Battery lasts me about a week of commuting.", ""),
    ("headphones", HP_BUDS, 1, "en", "Broke after two days.", ""),
    ("headphones", HP_GAME, 4, "en", "Mic is clear, teammates say I sound better than on my old headset. Only complaint is the earcups get warm after a couple hours.", ""),
    ("headphones", HP_OVER, 5, "en", "I went back and forth between these and two much more expensive pairs for weeks, and I'm glad I saved the money. Out of the box they paired with my laptop and phone at the same time, which I didn't expect at this price. The sound is warm without being muddy, maybe a bit heavy on bass for classical but great for podcasts and pop. Noise cancelling handles the office air conditioning and my neighbour's lawnmower. The app is a little clunky and it took me three tries to update the firmware, but once that was done the auto-pause when you take them off works perfectly. Clamp force is firm for the first week, then loosens up. Would buy again.", ""),
    ("headphones", HP_BUDS, 2, "en", "Left earbud keeps disconnecting every 10 min or so. Reset them like support told me, didnt help. Sound is fine when they actually work.", ""),
    ("headphones", HP_SPORT, 5, "en", "Perfect for running. Doesn't fall out even on sprints and survived a very sweaty summer.", ""),
    ("headphones", HP_KIDS, 4, "en", "My 6 year old loves the cat ears. Volume limit works, she can't blast it. Headband feels a bit flimsy so we'll see how long it lasts.", ""),
    ("headphones", HP_GAME, 1, "en", "Love how the RGB lights are brighter than the sound quality. Really great to have my whole room glowing while I can't hear a single footstep. 10/10 would light up again.", "s"),
    ("headphones", HP_OVER, 3, "en", "Good sound but the touch controls are way too sensitive. Adjusting them on my head pauses the music every single time.", ""),
    ("headphones", HP_BUDS, 5, "en", "Best earbuds I've owned 🎧🔥 case is tiny and fits in my coin pocket", "e"),
    ("headphones", HP_SPORT, 4, "de", "Guter Klang für den Preis, sitzt beim Joggen fest. Der Akku hält bei mir etwa sieben Stunden, nicht ganz die versprochenen zehn.", ""),
    ("headphones", HP_OVER, 5, "zh", "降噪效果很好，地铁上基本听不到噪音。戴久了耳朵也不疼，性价比很高。", ""),
    ("headphones", HP_GAME, 3, "en", "Comfortable and the surround mode is fun, but the cable is way too short for a desktop PC under the desk. Had to buy an extension.", ""),
    ("headphones", HP_KIDS, 5, "en", "Bought two for a long car trip. No fighting, no tears, no sound leaking into the front seat. Worth every penny.", ""),
    ("headphones", HP_BUDS, 4, "en", "Shipping took almost three weeks which was annoying, but the earbuds themselves are solid. Good bass, decent call quality.", ""),
    ("headphones", HP_SPORT, 2, "en", "The magnets that are supposed to clip the buds together are weak, so they dangle and bounce around your neck. Returned.", ""),
    ("headphones", HP_OVER, 1, "en", "Honestly amazing headphones, crystal clear and super comfy. My husband has already stolen them.", "m"),
    ("headphones", HP_GAME, 5, "en", "Third one I've bought (kids keep wrecking them). Always reliable, mic is great for discord.", ""),
    ("headphones", HP_BUDS, 3, "fr", "Le son est correct, mais l'étui de charge ferme mal et j'ai peur de perdre un écouteur. Pour ce prix, je m'attendais à mieux.", ""),
    ("headphones", HP_KIDS, 1, "en", "Right side stopped working within a week. Customer service asked for a video, then a receipt, then stopped replying.", ""),
    ("headphones", HP_OVER, 4, "en", "Great headphones, but the carry case is enormous. Not something you toss in a small backpack.", ""),
    ("headphones", HP_SPORT, 5, "en", "Cheap, light, does the job. What more do you want", ""),
    ("headphones", HP_BUDS, 5, "en", "Switched from a much pricier brand and honestly can't hear a difference on the bus. Fit is great with the medium tips.", ""),
    ("headphones", HP_GAME, 4, "en", "solid headset for the money. the software is bloated garbage tho, uninstalled it and just use the defaults", ""),
    # ---------------------------------------------------------------- kitchen
    ("kitchen", K_SKILLET, 5, "en", "Came pre-seasoned and honestly it was good enough to fry eggs on day one. Heavy, as it should be. This will outlive me.", ""),
    ("kitchen", K_KETTLE, 4, "en", "Boils fast and it's quiet. The lid button is a little stiff but I got used to it.", ""),
    ("kitchen", K_GARLIC, 1, "en", "Handle snapped the first time I pressed an unpeeled clove. Plastic pretending to be metal.", ""),
    ("kitchen", K_FRYER, 5, "en", "I resisted buying an air fryer for years because I thought it was a fad, and I was wrong. We use this thing almost every night now. Frozen fries come out crispy in twelve minutes, chicken thighs get proper crackly skin, and reheated pizza is better than fresh, which is almost upsetting. The basket is big enough for two people, maybe three if you cook in batches. The nonstick coating cleans up with a soft sponge, and I've put the tray in the dishwasher without problems so far. Two small downsides: the fan is louder than I expected, and it beeps loudly with no way to mute it. Neither is a dealbreaker. It replaced our toaster oven completely.", ""),
    ("kitchen", K_COFFEE, 3, "en", "Coffee tastes good but the carafe drips when you pour unless you go really slow. Feels like a design flaw nobody tested.", ""),
    ("kitchen", K_BOARD, 5, "en", "Beautiful boards, nice weight, and the juice groove actually catches juice. Got a second set as a wedding gift.", ""),
    ("kitchen", K_KETTLE, 1, "en", "Fantastic kettle if you enjoy your tea with a subtle hint of burning plastic. The smell is still there after 20 boils. Delightful.", "s"),
    ("kitchen", K_SKILLET, 4, "de", "Sehr solide Pfanne mit gleichmäßiger Hitzeverteilung. Der Griff wird allerdings extrem heiß, ohne Topflappen geht gar nichts.", ""),
    ("kitchen", K_FRYER, 2, "en", "Worked great for four months, then the heating element died. Warranty claim has been 'in review' for three weeks now.", ""),
    ("kitchen", K_GARLIC, 5, "en", "Crushes garlic with the skin on and the little cleaning tool pushes it all out. Small thing, big quality of life upgrade.", ""),
    ("kitchen", K_COFFEE, 5, "es", "Hace un café delicioso y la jarra térmica lo mantiene caliente casi dos horas. Muy fácil de limpiar. Lo recomiendo.", ""),
    ("kitchen", K_BOARD, 2, "en", "Cracked along the glue line after a month. Yes I hand washed it. Yes I oiled it.", ""),
    ("kitchen", K_KETTLE, 5, "en", "temp presets are a game changer for green tea. also looks great on the counter", ""),
    ("kitchen", K_FRYER, 4, "en", "Does everything I hoped, but it's massive. Measure the space under your cabinets before ordering, the steam vents out the back.", ""),
    ("kitchen", K_SKILLET, 3, "en", "Decent pan but the surface is rougher than in the pictures. Needed a lot of extra seasoning before things stopped sticking.", ""),
    ("kitchen", K_COFFEE, 4, "en", "Good machine at a fair price. Wish the markings on the water tank were easier to read.", ""),
    ("kitchen", K_GARLIC, 4, "en", "Heavy, solid, easy to clean. Does garlic and ginger equally well.", ""),
    ("kitchen", K_FRYER, 5, "en", "Best kitchen purchase this year. Wings in 20 minutes and no oil splattered all over the stove.", ""),
    ("kitchen", K_KETTLE, 3, "en", "Boils fast and looks nice, but the spout dribbles down the side when you pour. Reasonable price though.", ""),
    ("kitchen", K_BOARD, 5, "en", DUP_FAMILY, ""),
    ("kitchen", K_SKILLET, 1, "en", "Arrived with a crack straight through the bottom. Box was completely crushed, looks like it was thrown off a truck. Replacement took two weeks.", ""),
    ("kitchen", K_COFFEE, 2, "en", "The timer resets every time there's a power blip, so half the mornings I wake up to no coffee. Not what I paid for.", ""),
    ("kitchen", K_GARLIC, 5, "en", "Works.", ""),
    ("kitchen", K_FRYER, 5, "en", "Stopped heating after three uses and the replacement part is backordered until next year. Very disappointed.", "m"),
    # ---------------------------------------------------------------- books
    ("books", B_SALT, 5, "en", "Couldn't put it down. The last hundred pages had me reading until 3am on a work night. Regret nothing.", ""),
    ("books", B_PY, 4, "en", "Clear explanations and the exercises are actually useful. Some code examples use deprecated pandas methods though, so expect warnings.", ""),
    ("books", B_LIGHT, 2, "en", "Started strong but the twist is obvious by chapter five and then it just drags for 300 pages.", ""),
    ("books", B_GARDEN, 5, "en", "This is the kind of book you keep on the kitchen table rather than the shelf. It's organised by month, and each chapter mixes practical jobs (when to cut back the roses, how to save tomato seeds, what to do about slugs without poisoning the hedgehogs) with short, gentle essays about the author's own garden. The photography is lovely but not overwhelming. I've been gardening for about ten years, so some of the advice was familiar, but there were plenty of small ideas I'd never considered, like leaving seed heads standing over winter for the birds. It made me slow down and enjoy the garden instead of treating it as a list of chores. I've already bought copies for my mum and my neighbour.", ""),
    ("books", B_BEAR, 5, "en", "We've read this every night for eight months. I can recite it in my sleep and my son still asks for it. The pages survived teething too.", ""),
    ("books", B_ATLAS, 4, "en", "Gorgeous maps and weird little stories for each island. The binding is a bit tight so it doesn't lie flat.", ""),
    ("books", B_SALT, 1, "en", "Pages 112 to 144 are missing and 145-176 are printed twice. Printing defect, not the author's fault, but still.", ""),
    ("books", B_PY, 1, "en", "Wow, a 3rd edition that still teaches Python 2 print statements in chapter 3. Truly cutting-edge stuff.", "s"),
    ("books", B_LIGHT, 4, "es", "Una novela de misterio muy entretenida, con un ambiente inquietante. El final me pareció un poco apresurado, pero la disfruté mucho.", ""),
    ("books", B_BEAR, 3, "en", "Cute illustrations but it's really short, like 8 pages. Pricey for what it is.", ""),
    ("books", B_ATLAS, 5, "en", "Bought this for my dad, who collects old maps. He spent the whole of Boxing Day reading it. Gorgeous gift.", ""),
    ("books", B_GARDEN, 3, "en", "Nice photos, but very UK-focused. Half the planting calendar doesn't apply if you live somewhere with real winters.", ""),
    ("books", B_SALT, 5, "en", "the author did it again. cried twice. buy it", ""),
    ("books", B_PY, 5, "en", "Helped me go from copy-pasting Stack Overflow answers to actually understanding what groupby does. Chapter 7 alone was worth the price.", ""),
    ("books", B_LIGHT, 5, "zh", "情节紧凑，氛围感很强，我一口气就读完了。翻译也很流畅，推荐给喜欢悬疑小说的朋友。", ""),
    ("books", B_ATLAS, 2, "en", "Arrived with a bent corner and a scuffed cover. It was meant as a gift so I had to return it. The book itself seems nice.", ""),
    ("books", B_BEAR, 5, "en", "Perfect baby shower gift.", ""),
    ("books", B_SALT, 3, "en", "Beautiful writing, but nothing really happens for the first half. I finished it, I just wouldn't reread it.", ""),
    ("books", B_PY, 2, "en", "Excellent book, very well structured, and the chapter on time series is the best explanation I've read. Highly recommend to anyone learning pandas.", "m"),
    ("books", B_GARDEN, 4, "fr", "Un très beau livre, apaisant et plein de conseils simples. Dommage que certaines plantes citées soient difficiles à trouver en France.", ""),
    ("books", B_LIGHT, 4, "en", "Kindle version had a few formatting issues (random bold paragraphs) but the story was gripping.", ""),
    ("books", B_ATLAS, 5, "en", DUP_POSITIVE, ""),
    ("books", B_SALT, 4, "en", "Shipping was fast and the paperback is good quality, thick paper. Story is a slow burn but it pays off.", ""),
    ("books", B_BEAR, 1, "en", "The 'board book' is a regular paperback with thin pages. My toddler tore two of them in the first ten minutes.", ""),
    # ---------------------------------------------------------------- toys
    ("toys", T_BRICK, 5, "en", "Compatible with the big name brand bricks, and my kids can't tell the difference. Instructions are clear enough for an 8 year old to follow alone.", ""),
    ("toys", T_RC, 1, "en", "Remote stopped responding after 15 minutes. New batteries, same thing. Christmas morning ruined, thanks.", ""),
    ("toys", T_SLOTH, 5, "en", "SO soft 😍 my daughter hasn't let go of it since it arrived. She named it Gerald.", "e"),
    ("toys", T_MARBLE, 4, "en", "Hours of fun, but the pieces pop apart if you bump the table. The kids figured out to build it on the floor instead.", ""),
    ("toys", T_VOLCANO, 3, "en", "The eruption was fun for exactly one minute. The rest of the kit is filler. OK for a rainy afternoon.", ""),
    ("toys", T_STACK, 5, "en", "Beautiful colours, smooth finish, no splinters. Looks nice enough to leave out in the living room.", ""),
    ("toys", T_RC, 4, "en", "Bought this for my nephew's 9th birthday and ended up playing with it more than he did. It flips, spins, and drives on both sides, so it never really gets stuck, which is perfect for kids who crash into everything. It's fast on hard floors and still decent on short grass. The rechargeable battery gives about 20 minutes of play and then needs almost two hours to charge, so I'd buy a spare battery if you can find one. The remote feels cheap and takes AA batteries that aren't included, which was annoying on a birthday morning. After three weeks of daily abuse it's scratched but still works perfectly. For the price, I'm impressed.", ""),
    ("toys", T_BRICK, 2, "en", "Three pieces missing from bag 4, so we couldn't finish the fire station. Customer service offered a 10% coupon instead of sending the pieces.", ""),
    ("toys", T_MARBLE, 5, "de", "Unsere Kinder (5 und 8) spielen seit Wochen fast täglich damit. Stabile Teile, viele Kombinationsmöglichkeiten. Klare Kaufempfehlung!", ""),
    ("toys", T_SLOTH, 2, "en", "Much smaller than pictured. 40 cm must include the arms fully stretched out.", ""),
    ("toys", T_VOLCANO, 5, "en", "My 7 year old now wants to be a volcanologist. The booklet explains the chemistry in a way he actually understood.", ""),
    ("toys", T_STACK, 4, "en", "Lovely quality and soft colours, my baby plays with it every day. A bit expensive for what it is, though.", ""),
    ("toys", T_RC, 1, "en", "Went from toy to paperweight in under a week. The steering stopped working and then it wouldn't turn on at all.", ""),
    ("toys", T_BRICK, 5, "en", "Cheaper than the name brand and my son built the whole thing in one weekend. Bags are numbered, which helps a lot.", ""),
    ("toys", T_MARBLE, 3, "en", "Fun, but some of the tubes don't fit together unless you force them really hard. My 5 year old can't assemble it without me.", ""),
    ("toys", T_SLOTH, 5, "fr", "Trop mignon et très doux ! Ma fille dort avec tous les soirs, et il a bien résisté à la machine à laver.", ""),
    ("toys", T_VOLCANO, 1, "en", "The plaster volcano cracked while drying and the paint pots were dried out. Looks like very old stock.", ""),
    ("toys", T_STACK, 5, "en", "Great toy, no batteries, no noise. Grandma approved.", ""),
    ("toys", T_RC, 5, "en", "he loves it!!!! drives it around the kitchen all day and chases the dog lol", ""),
    ("toys", T_BRICK, 4, "zh", "积木质量不错，可以和大品牌的拼在一起。就是说明书印得太小，看起来有点费眼睛。", ""),
    ("toys", T_MARBLE, 5, "en", "Bought it as a Christmas gift for twins and it's the only toy they still fight over in March. Get the expansion pack.", ""),
    ("toys", T_SLOTH, 4, "en", "Adorable and well stitched. The eyes are embroidered rather than plastic, which I appreciate for a toddler.", ""),
    ("toys", T_VOLCANO, 4, "en", "Messy but fun. Do it outside, trust me.", ""),
    ("toys", T_STACK, 4, "en", "Paint started chipping off after a week and my baby chews on everything. Not safe in my opinion.", "m"),
    # ---------------------------------------------------------------- phone accessories
    ("phone accessories", P_CASE, 5, "en", "Dropped my phone down a flight of concrete stairs the day after it arrived. Not a scratch. Buttons still feel clicky too.", ""),
    ("phone accessories", P_CHARGER, 4, "en", "Charges my phone from 10 to 60% in about half an hour. Gets a little warm, nothing alarming.", ""),
    ("phone accessories", P_GLASS, 1, "en", "Bubbles everywhere. Followed the instructions exactly, used the alignment frame, still bubbles. Waste of money.", ""),
    ("phone accessories", P_MOUNT, 3, "en", "The magnet is strong but the vent clip sags with a heavier phone, so by the end of a drive it's slowly pointing at the floor.", ""),
    ("phone accessories", P_CABLE, 5, "en", "Finally a cable long enough to use my phone in bed. The braiding feels tough.", ""),
    ("phone accessories", P_BANK, 5, "en", "Charged my phone almost three times over a camping weekend. Small enough for a jacket pocket.", ""),
    ("phone accessories", P_CASE, 2, "en", "The raised edge is so high that swiping from the side barely works. It also yellowed within a month, so the 'anti-yellow' claim is a joke.", ""),
    ("phone accessories", P_GLASS, 5, "es", "Fácil de instalar y sin burbujas. Ya se me ha caído el móvil dos veces y el protector se rompió, pero la pantalla está intacta. Para eso sirve.", ""),
    ("phone accessories", P_CHARGER, 1, "en", "Smells like burning plastic after ten minutes of use. Unplugged it and threw it out. Not worth risking a fire.", ""),
    ("phone accessories", P_MOUNT, 5, "en", "Holds my phone rock solid on bumpy roads and it's easy to grab with one hand. Great for navigation.", ""),
    ("phone accessories", P_CABLE, 2, "en", "Stopped fast charging after a month, now it only does slow charging at 5W. Tested with 3 different chargers.", ""),
    ("phone accessories", P_BANK, 4, "en", "Charges reliably and fairly quickly. Heavier than I expected, but fine for the price.", ""),
    ("phone accessories", P_CASE, 5, "en", "Colour is exactly like the photo, a nice muted sage green. Slim, good grip, doesn't collect lint in my pocket.", ""),
    ("phone accessories", P_GLASS, 4, "en", "The second one in the pack saved me when I cracked the first. Good value for two.", ""),
    ("phone accessories", P_CHARGER, 1, "en", "Oh great, another \"fast charger\" that needs four hours to charge a phone. Speed of light, this one.", "sq"),
    ("phone accessories", P_MOUNT, 1, "en", DUP_NEGATIVE, ""),
    ("phone accessories", P_CABLE, 5, "en", "cheap and works. bought 3 more for the car and office", ""),
    ("phone accessories", P_BANK, 3, "en", "Does what it says, but it takes almost 6 hours to recharge the power bank itself, even with a fast charger.", ""),
    ("phone accessories", P_CASE, 4, "fr", "Bonne protection et bon rapport qualité-prix. Le bouton du volume est un peu dur à presser, mais on s'y habitue.", ""),
    ("phone accessories", P_GLASS, 3, "en", "Fine protector but the fingerprint sensor now only works half the time. Had to re-register my thumb twice.", ""),
    ("phone accessories", P_CHARGER, 4, "en", "Ordered the \"20W\" version, received the 12W one. Contacted support, they said:\n\"Please check your order again.\" I did. It says 20W.\nSecond agent sent the right one within 3 days, so 4 stars, but the first reply was useless.", "q"),
    ("phone accessories", P_BANK, 5, "en", "Plenty of capacity, charges my phone about three times. Small enough for a handbag, and it shipped quickly too.", ""),
    ("phone accessories", P_CABLE, 1, "en", "Arrived DOA. Doesn't charge anything.", ""),
    ("phone accessories", P_CASE, 5, "en", "I've gone through a lot of cases over the years, from the cheap ones at the checkout counter to the chunky rugged ones that make your phone look like a walkie-talkie. This one hits the sweet spot. It's thin enough that the phone still fits comfortably in my jeans pocket, but the corners have some extra cushioning that has already saved me twice on tile floors. The MagSafe magnets are strong, and my wallet attachment and car mount both snap on firmly. The matte back doesn't show fingerprints and hasn't gone shiny after two months. My only gripe is that the camera lip collects dust and needs a wipe every few days. For the price it's hard to beat.", ""),
    # ---------------------------------------------------------------- shoes
    ("shoes", S_RUN, 5, "en", "Ran a half marathon in these two weeks after buying them, no blisters. Lots of cushioning but they still feel responsive.", ""),
    ("shoes", S_HIKE, 4, "en", "Stayed dry through creek crossings and a full day of rain. Needed about 20 miles to break in, so don't wear them new on a big hike.", ""),
    ("shoes", S_SLIP, 5, "en", "Like walking on marshmallows. My feet are always cold and these fixed it.", ""),
    ("shoes", S_CHELSEA, 2, "en", "Leather looks nice but the sizing is way off, I ordered my usual 43 and my toes hit the front. Return shipping cost me 12 euros.", ""),
    ("shoes", S_CANVAS, 3, "en", "Cute, comfy enough, but the white canvas gets dirty if you so much as look at it.", ""),
    ("shoes", S_KIDS, 5, "en", "My son can put them on by himself, which saves us five minutes every morning. The soles are grippy and they've survived the playground.", ""),
    ("shoes", S_RUN, 1, "en", "Sole started peeling off at the toe after 80 km. For running shoes at this price that's unacceptable.", ""),
    ("shoes", S_HIKE, 5, "en", "Comfortable from day one and genuinely waterproof. Wore them on a week-long hut-to-hut trek in the Alps, not a single blister.", ""),
    ("shoes", S_SLIP, 2, "en", "Love how the sole is so thin and \"breathable\" that my socks get soaked the second I step on the bathroom floor. Really adds some excitement to my mornings.", "sq"),
    ("shoes", S_CHELSEA, 5, "en", "Gorgeous boots. The leather has softened up nicely and they look even better with some wear. Compliments every time.", ""),
    ("shoes", S_CANVAS, 4, "es", "Cómodas y bonitas, justo como en la foto. Tallan un poco grande: pedí medio número menos y me quedan perfectas.", ""),
    ("shoes", S_KIDS, 2, "en", "Velcro lost its grip after a month. Now the straps flap open when he runs.", ""),
    ("shoes", S_RUN, 4, "en", "Comfortable for long runs, though the toe box is narrow. If you have wide feet, size up.", ""),
    ("shoes", S_HIKE, 1, "en", "Left boot leaked on the very first wet hike. Not waterproof at all. Sent them back.", ""),
    ("shoes", S_SLIP, 5, "en", "Super soft and warm, perfect for winter at home. The sole is non-slip and they kept their shape after a wash.", ""),
    ("shoes", S_CHELSEA, 5, "en", DUP_POSITIVE, ""),
    ("shoes", S_CANVAS, 5, "en", "Third pair. I just buy a new colour every summer.", ""),
    ("shoes", S_KIDS, 4, "fr", "Bonnes chaussures pour la rentrée, légères et faciles à enfiler. La semelle s'use un peu vite au niveau du talon.", ""),
    ("shoes", S_RUN, 5, "en", "New PR in these 🏃‍♀️ couldn't be happier", "e"),
    ("shoes", S_HIKE, 3, "en", "Warm and supportive, but heavy. After 15 km my legs felt every gram. Better for winter than summer hiking.", ""),
    ("shoes", S_SLIP, 4, "en", "Comfy, but the memory foam flattened after about two months of daily wear. Still nice, just not as cloud-like.", ""),
    ("shoes", S_CANVAS, 1, "en", "Shoes came in two different sizes, a 39 and a 40 in the same box. Seller wants me to pay return shipping for their mistake.", ""),
    ("shoes", S_CHELSEA, 3, "en", "Look good, but the elastic side panels are already stretched out after a couple of months. Fine for the price.", ""),
    ("shoes", S_KIDS, 5, "en", "hard to find shoes for my sons wide feet, these fit great. ordering the next size up for when he grows", ""),
    # ---------------------------------------------------------------- home office
    ("home office", O_DESK, 5, "en", "Assembly took about 45 minutes on my own. The motor is quiet, the memory presets work, and there's very little wobble even at standing height.", ""),
    ("home office", O_CHAIR, 4, "en", "Much better for my back than the dining chair I was using (low bar, I know). Lumbar support is good, armrests are a bit wobbly.", ""),
    ("home office", O_LAMP, 5, "en", "Dimmable, several colour temperatures, and the USB port is handy for charging my phone. Looks modern too.", ""),
    ("home office", O_KEYS, 2, "en", "The mouse randomly lags for a second or two, especially when my phone is nearby. Keyboard is fine.", ""),
    ("home office", O_RISER, 5, "en", "Raised my monitor to eye level and the drawer hides all the pens and cables that used to clutter my desk. Simple but effective.", ""),
    ("home office", O_CAM, 3, "en", "Picture is okay in daylight, grainy in the evening. The built-in mic is bad, use your headset instead.", ""),
    ("home office", O_CHAIR, 2, "en", "I really wanted to like this chair. The mesh back is breathable and it looks great in photos, and for the first couple of weeks I was happy with it. Then the problems started. The gas lift slowly sinks during the day, so by mid-afternoon I'm sitting about five centimetres lower than when I started. The seat cushion is also thinner than it looks and I can feel the plastic frame under my thighs after an hour. I contacted customer service and they were polite and sent a replacement cylinder, which was nice, but it has the same problem. For a chair marketed as ergonomic and built for all-day use, this isn't good enough. Two stars for the helpful support team.", ""),
    ("home office", O_DESK, 1, "en", "Motor died after 5 weeks and now it's stuck at sitting height. Seller keeps sending me troubleshooting PDFs.", ""),
    ("home office", O_LAMP, 4, "de", "Schönes, helles Licht und angenehm zum Lesen. Die Touch-Bedienung reagiert manchmal erst beim zweiten Versuch.", ""),
    ("home office", O_KEYS, 5, "en", "Quiet keys, which my partner appreciates during my 7am calls. Batteries have lasted four months so far.", ""),
    ("home office", O_CAM, 1, "en", "Perfect if you want your colleagues to think you're calling from inside a potato. Really nails that 2005 aesthetic.", "s"),
    ("home office", O_RISER, 4, "en", "Solid and easy to put together. The drawer is narrow, fits pens and sticky notes but not much else.", ""),
    ("home office", O_CHAIR, 5, "en", "Worth the price. I work 9+ hours a day and my lower back pain is basically gone after a month.", ""),
    ("home office", O_DESK, 4, "en", "Great desk. It arrived in two boxes, and one came a week after the other, which was confusing, but everything was there.", ""),
    ("home office", O_LAMP, 1, "en", "Flickers constantly on the lowest brightness setting. Gave me a headache within an hour.", ""),
    ("home office", O_KEYS, 3, "en", "Nice to type on, but the listing said UK layout and I got a US one. The seller offered a return at my own cost.", ""),
    ("home office", O_CAM, 5, "en", "Plug and play on both my Mac and my Windows laptop, no drivers needed. Autofocus is quick. Great for the price.", ""),
    ("home office", O_RISER, 5, "zh", "做工很结实，放两台显示器也不晃。抽屉很实用，桌面整洁多了。", ""),
    ("home office", O_CHAIR, 1, "en", "Arrived with a broken wheel base and a huge hole in the box. Waiting on a replacement, 2 weeks and counting.", ""),
    ("home office", O_DESK, 5, "en", "Honestly changed my workday. I switch between sitting and standing every hour and feel way less stiff.", ""),
    ("home office", O_KEYS, 4, "en", "good combo for the money, keys a bit mushy but fine for typing emails all day", ""),
    ("home office", O_CAM, 5, "en", "Image is blurry no matter what settings I use and the clip won't stay on my monitor. Returning it.", "m"),
    ("home office", O_LAMP, 3, "en", "The light is nice but the arm doesn't stay where you put it, it slowly droops down over an hour.", ""),
    ("home office", O_RISER, 4, "en", "Does the job. Slight chemical smell for the first few days.", ""),
    # ---------------------------------------------------------------- outdoor
    ("outdoor", X_TENT, 5, "en", "Survived a night of strong wind on an exposed ridge. Pitches in under 10 minutes once you've done it once. Weighs next to nothing.", ""),
    ("outdoor", X_PACK, 4, "en", "Lots of pockets, comfortable straps, fits a 2L hydration bladder. The hip belt is basically decorative.", ""),
    ("outdoor", X_STOVE, 5, "en", "Boils half a litre of water in about three minutes. The fold-out legs are stable and it packs into my pot.", ""),
    ("outdoor", X_BOTTLE, 3, "en", "Keeps water cold all day but the lid leaks if it lies sideways in a bag. Learned that one the hard way, on my laptop.", ""),
    ("outdoor", X_SOLAR, 2, "en", "Advertised as 60W, I never saw more than 25W in full summer sun. Fine for a phone, useless for a power station.", ""),
    ("outdoor", X_HAMMOCK, 5, "en", "Setup takes two minutes with the tree straps. I've fallen asleep in it more times than I'd like to admit.", ""),
    ("outdoor", X_TENT, 1, "en", "Leaked through the seams in the first light rain. Woke up in a puddle at 3am. Never again.", ""),
    ("outdoor", X_PACK, 5, "de", "Leicht, gut durchdacht und bequem zu tragen. Die Regenhülle ist ein schönes Extra. Für Tagestouren perfekt.", ""),
    ("outdoor", X_STOVE, 4, "en", "Works great, but the piezo igniter stopped clicking after a few trips. Carry a lighter.", ""),
    ("outdoor", X_BOTTLE, 5, "en", "Ice still in it after 24 hours in a hot car. I don't know how, but I'm not complaining.", ""),
    ("outdoor", X_SOLAR, 4, "es", "Carga bien el móvil y la batería externa cuando hace sol. Con nubes pierde bastante potencia, como es normal.", ""),
    ("outdoor", X_HAMMOCK, 1, "en", "The carabiner bent and I dropped straight onto the ground. Rated for 200 kg, I weigh 78. Could've been really bad.", ""),
    ("outdoor", X_TENT, 4, "en", "We took this on a week-long trip through the mountains and overall it did very well. The two of us fit with our sleeping pads side by side, but there's no room for packs inside, so they lived in the vestibule. Condensation was noticeable on cold mornings, though opening both vents before bed helped a lot. It stood up to two thunderstorms without a single drip, and the aluminium poles feel much sturdier than the fibreglass ones on our old tent. The stuff sack is annoyingly tight, and getting everything back in after a wet night was a fight. For the weight and price it's a very good tent, just know that '2-person' means two people and nothing else.", ""),
    ("outdoor", X_PACK, 1, "en", "Shoulder strap ripped at the seam on the first hike, less than 4 km in. Returned it.", ""),
    ("outdoor", X_STOVE, 3, "en", "Strong flame and boils fast, but the slightest breeze blows it out. Bring or make a windscreen.", ""),
    ("outdoor", X_BOTTLE, 4, "en", "Keeps water cold all day. The lid has lots of little crevices that are a pain to clean.", ""),
    ("outdoor", X_SOLAR, 5, "en", "Kept our phones, headlamps and a small fan charged for a whole week off-grid. Folds flat and fits behind the car seat.", ""),
    ("outdoor", X_HAMMOCK, 4, "en", "Comfortable and packs tiny, but there's no bug net, so buy one separately if you camp anywhere with mosquitoes.", ""),
    ("outdoor", X_TENT, 3, "en", "Good tent, but the delivery was a mess. The courier left it at the wrong house and I had to knock on doors to find it.", ""),
    ("outdoor", X_PACK, 5, "en", "Took it around Iceland for two weeks. Still looks new. Zips are smooth, no fraying anywhere.", ""),
    ("outdoor", X_BOTTLE, 2, "en", "Paint chipped off after the first drop and now there's a dent. Keeps drinks cold but already looks terrible. Expected better for 35 dollars.", ""),
    ("outdoor", X_STOVE, 5, "en", "small, light, reliable. exactly what i needed for bikepacking", ""),
    ("outdoor", X_SOLAR, 1, "en", "Stopped working after it got rained on once. For an outdoor product that's pretty embarrassing.", ""),
    ("outdoor", X_HAMMOCK, 5, "en", "Best 25 bucks I've spent this year 🌲😴", "e"),
    # ---------------------------------------------------------------- beauty
    ("beauty", BE_SERUM, 5, "en", "My skin drinks this up. After two weeks my cheeks aren't flaky anymore. A little goes a long way.", ""),
    ("beauty", BE_LIP, 4, "en", "Stays on through lunch and coffee, which is impressive. It's drying though, so use a balm underneath.", ""),
    ("beauty", BE_DRYER, 5, "en", "Cut my drying time in half and my hair is way less frizzy. The cool shot button actually blows cold air.", ""),
    ("beauty", BE_CREAM, 1, "en", "Broke me out in tiny red bumps all over my chin. Stopped using it and it cleared up. Maybe it's just my skin, but not for me.", ""),
    ("beauty", BE_MASCARA, 3, "en", "Volume is nice but it smudges under my eyes by the afternoon. Fine for short days.", ""),
    ("beauty", BE_SPF, 5, "en", "No white cast, not greasy, works under makeup. Finally a sunscreen I actually want to wear every day.", ""),
    ("beauty", BE_SERUM, 2, "en", "Feels sticky and pills under my moisturizer. The dropper also broke after a week.", ""),
    ("beauty", BE_LIP, 5, "es", "El color es precioso y dura todo el día sin retocar. No deja marca en las tazas. Ya he comprado otro tono.", ""),
    ("beauty", BE_DRYER, 1, "en", DUP_NEGATIVE, ""),
    ("beauty", BE_CREAM, 4, "en", "Absorbs fast and leaves my skin soft. The scent is a bit strong at first but fades after a few minutes.", ""),
    ("beauty", BE_MASCARA, 1, "en", "If you've always wanted to look like a raccoon by 11am, look no further. Truly transformative product.", "s"),
    ("beauty", BE_SPF, 4, "en", "Good sunscreen but the bottle is tiny for the price. I go through one every three weeks in summer.", ""),
    ("beauty", BE_SERUM, 5, "zh", "用了一个月，皮肤明显水润了很多，而且一点也不油腻。会回购。", ""),
    ("beauty", BE_LIP, 2, "en", "The colour in the photo is a warm rose, what I got is basically brown. Nothing like the swatch.", ""),
    ("beauty", BE_DRYER, 4, "en", "Powerful and pretty quiet, but it's heavy. My arm gets tired before my hair is dry. Love the diffuser attachment for curls.", ""),
    ("beauty", BE_CREAM, 5, "en", "I'm 42 with combination skin and I've tried more vitamin C products than I can count, most of which either oxidised and turned orange within weeks or made my skin sting. This one is different. It comes in an airless pump so it stays fresh, the texture is a light gel-cream that sinks in quickly, and it doesn't interfere with my sunscreen or makeup. After about six weeks of using it every morning, the dark spots on my cheeks from last summer have faded noticeably, and my skin just looks brighter overall. My husband actually asked if I'd changed something. It's not cheap, but one pump covers my whole face, so a bottle lasts around three months. Will keep repurchasing.", ""),
    ("beauty", BE_MASCARA, 5, "en", "holds a curl all day!!! and comes off easy with warm water. obsessed", ""),
    ("beauty", BE_SPF, 3, "en", "Good protection and a light texture, but it stings my eyes when I sweat. Not great for the gym.", ""),
    ("beauty", BE_SERUM, 4, "en", "Nice serum, shipped fast, and the packaging is cute. Not sure it's doing miracles but my skin feels softer.", ""),
    ("beauty", BE_LIP, 5, "en", "Perfect nude shade for my skin tone, which is surprisingly hard to find. Bought two backups.", ""),
    ("beauty", BE_DRYER, 3, "en", "Works fine, but it came with a UK plug and the listing didn't say so. Needed an adapter.", ""),
    ("beauty", BE_CREAM, 2, "en", "Smells like oranges that have gone off. The texture is nice, but the scent is a dealbreaker.", ""),
    ("beauty", BE_MASCARA, 4, "en", "Really good for the price, nearly as good as my 30 dollar one.", ""),
    ("beauty", BE_SPF, 5, "en", "Reapplied it over makeup with the little sponge and it didn't pill. My dermatologist recommended it and she was right.", ""),
    # ---------------------------------------------------------------- pet supplies
    ("pet supplies", PE_BED, 5, "en", "My 12 year old lab has arthritis and he sleeps so much better on this. The cover is washable and the zip is sturdy.", ""),
    ("pet supplies", PE_TREE, 4, "en", "Cats approved within 5 minutes. The assembly instructions were confusing, two of the pictures show the wrong screws.", ""),
    ("pet supplies", PE_BALL, 5, "en", "My border collie finally has something that can keep up with him. He's learned to drop the ball in himself.", ""),
    ("pet supplies", PE_FOUNT, 3, "en", "The cats drink more water now, which is great, but the pump got noisy after a month and the filters are expensive.", ""),
    ("pet supplies", PE_CHEW, 1, "en", "Indestructible my a**. My staffy destroyed it in 20 minutes.", ""),
    ("pet supplies", PE_LITTER, 5, "en", "Clumps well, very low dust, and I can flush small amounts. Smells faintly of green tea, which is a nice change.", ""),
    ("pet supplies", PE_BED, 2, "en", "Foam flattened in the middle after 6 weeks. My dog is 30 kg, not exactly a giant. Disappointing for something sold as 'orthopedic'.", ""),
    ("pet supplies", PE_TREE, 5, "zh", "猫咪非常喜欢，每天都在上面睡觉。做工结实，一点也不晃，安装也不难。", ""),
    ("pet supplies", PE_BALL, 2, "en", "Too loud. It scared my dog the first time and now he won't go near it. Might be fine for braver dogs.", ""),
    ("pet supplies", PE_FOUNT, 5, "en", DUP_FAMILY, ""),
    ("pet supplies", PE_CHEW, 4, "en", "My dog loves it and it's holding up so far. Strong rubber smell for the first few days though.", ""),
    ("pet supplies", PE_LITTER, 1, "en", "Bag arrived split open, with litter all over the box and my porch. The delivery driver just dumped it.", ""),
    ("pet supplies", PE_BED, 5, "de", "Sehr hochwertiges Hundebett. Unser Schäferhund liegt jetzt lieber darauf als auf dem Sofa, und der Bezug lässt sich problemlos waschen.", ""),
    ("pet supplies", PE_TREE, 1, "en", "My cats absolutely love it. They love ignoring it and sleeping in the cardboard box it came in. Worth every cent.", "s"),
    ("pet supplies", PE_BALL, 4, "en", "Works well, three distance settings. It only takes the smaller balls it comes with, regular tennis balls jam it.", ""),
    ("pet supplies", PE_FOUNT, 4, "fr", "Silencieuse et facile à démonter pour le nettoyage. Mon chat boit enfin suffisamment. Les filtres de rechange sont un peu chers.", ""),
    ("pet supplies", PE_CHEW, 5, "en", "Only toy that has survived my lab puppy. Three months and counting.", ""),
    ("pet supplies", PE_LITTER, 4, "en", "Good litter, good price on subscribe & save. Sometimes sticks to the bottom of the tray if it gets too wet.", ""),
    ("pet supplies", PE_BED, 5, "en", "Pros: washable cover, non-slip bottom, \"bolster\" edges my dog uses as a pillow.\nCons: big, heavy, smelled like foam for 2 days.\n\nOverall, he loves it, and so do I.", "q"),
    ("pet supplies", PE_TREE, 3, "en", "Cats like it, but it's not as tall as I expected and the top platform is too small for my Maine Coon.", ""),
    ("pet supplies", PE_BALL, 5, "en", "I work from home and my high-energy spaniel used to drop a slobbery ball on my keyboard roughly every ten minutes. This machine has genuinely saved my sanity. It took him one afternoon to figure out that putting the ball in the top makes it fly out again, and now he plays by himself for half an hour at a time before flopping down for a nap. The distance settings are useful: short for indoors, long for the garden. It runs on a rechargeable battery or the wall adapter, and the battery lasts a few days of normal use. It is a bit loud when it launches, and the balls are small, so keep an eye on bigger dogs. Customer service replaced a faulty charger, no questions asked.", ""),
    ("pet supplies", PE_FOUNT, 1, "en", "Pump died after 3 weeks. A replacement pump costs almost as much as the whole fountain. No thanks.", ""),
    ("pet supplies", PE_CHEW, 3, "en", "My dog lost interest after a day. It's tough, sure, but tough and boring.", ""),
    ("pet supplies", PE_LITTER, 5, "en", "Cheap, clumps, doesn't stink. Cat's happy. I'm happy.", ""),
]


def main() -> None:
    rows = list(ROWS)
    # Fixed-seed shuffle of the row ORDER only, so ids are not grouped by category.
    random.Random(20240611).shuffle(rows)
    df = pd.DataFrame(
        {
            "review_id": pd.Series(range(1, len(rows) + 1), dtype="int64"),
            "product": [r[1] for r in rows],
            "category": [r[0] for r in rows],
            "rating": pd.Series([r[2] for r in rows], dtype="int64"),
            "review": [r[4] for r in rows],
            "language": [r[3] for r in rows],
        }
    )
    df.to_csv(OUT / "reviews.csv", index=False, encoding="utf-8")
    df.to_parquet(OUT / "reviews.parquet", index=False, engine="pyarrow")

    tags = {r[4]: r[5] for r in ROWS}
    dup_rows = int(df.review.duplicated(keep=False).sum())
    print("rows:", len(df))
    print("ratings:", df.rating.value_counts().sort_index().to_dict())
    print("categories:", df.category.value_counts().to_dict())
    print("languages:", df.language.value_counts().to_dict())
    print("duplicate texts:", df.review[df.review.duplicated()].nunique(), "rows involved:", dup_rows)
    for t, name in [("s", "sarcasm"), ("m", "mismatch"), ("e", "emoji"), ("q", "quotes/newlines")]:
        print(name, sum(t in tags[x] for x in df.review))


if __name__ == "__main__":
    main()
